-- A stand-in for the Kentik API's topXchart endpoint, served by Depot in the tests. A query's
-- "stub" member picks the behaviour: {name, delay, fail_times, status, message, mime, payload};
-- a query whose metric is "buckets" is refused with 400, as the original's bad_query was.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"
local kv = require "kv"
local service = ...
-- Counted in kv: each worker thread runs its own copy of this script.
local calls = kv.open("kentik_stub_calls", { durable = false })
local MIME = { png = "image/png", jpeg = "image/jpeg", svg = "image/svg+xml", pdf = "application/pdf" }

local function has_object_null(value)
  if type(value) ~= "table" then return false end
  local is_array = getmetatable(value) == json.array_mt
  for _, item in pairs(value) do
    if (item == json.null and not is_array) or has_object_null(item) then return true end
  end
  return false
end

service:post("/query/topXchart", function(req)
  if req:header("X-CH-Auth-Email") ~= "test@example.com" or req:header("X-CH-Auth-API-Token") ~= "secret-token" then
    return 401, '{"error": "Authentication failed"}'
  end
  local query = json.decode(req:body())
  if type(query) ~= "table" then return 400, '{"error": "not a query"}' end
  if has_object_null(query) then return 400, '{"error": "null members were sent"}' end
  local stub = query.stub or {}
  local name = stub.name or "default"
  local count = calls:update(function(tx)
    local n = (tx:get(name) or 0) + 1
    tx:put(name, n)
    return n
  end)
  if stub.delay then depot.sleep(stub.delay) end
  if stub.fail_times and count <= stub.fail_times then return 503, "Service Unavailable" end
  if stub.status then return stub.status, stub.message or ("error " .. stub.status) end
  local first = type(query.queries) == "table" and query.queries[1]
  if first and first.query and first.query.metric == "buckets" then
    return 400, '{"error": "Invalid metric: buckets", "kentik": "bad query"}'
  end
  local image_type = query.imageType or "png"
  local payload = stub.payload or crypto.base64(image_type .. "-image-bytes-" .. name)
  return { dataUri = "data:" .. (stub.mime or MIME[image_type] or "image/png") .. ";base64," .. payload }
end)

service:get("/calls/:name", function(req) return { calls = calls:get(req.params.name) or 0 } end)
