-- A relay in front of a real S3 server (s3rver), served by Depot in the tests, that counts the
-- requests passing through by operation and fails listings on demand: what an S3 that breaks
-- down in the middle of a paged listing looks like to the blob store. Settings: `upstream`, the S3
-- endpoint (http://127.0.0.1:<port>); `mount`, its mount when not "/" (bench/expiry_s3.sh serves
-- it next to the file cache), taken off the path before relaying.
--
-- Any path but /_relay/... is relayed to `upstream` as it came, headers and signature included
-- (s3rver checks the access key only), and the answer comes back whole: small objects only.
-- GET /_relay/calls → {"list": n, "list_continued": n, "list_uploads": n, "delete": n, "other": n,
--   "list_prefixes": {prefix: n}}: ListObjectsV2 without and with a continuation-token (and the
--   prefixes of the former), ListMultipartUploads, deletes, the rest.
-- PUT /_relay/faults {"fail_continued_lists": true} → every ListObjectsV2 with a continuation-token
--   answers 500 InternalError (counted all the same) until {"fail_continued_lists": false}.
local http = require "http"
local json = require "json"
local kv = require "kv"
local service = ...
local config = require("config").of(service)
-- In kv: each worker thread runs its own copy of this script.
local state = kv.open("s3_relay", { durable = false })
local upstream = config.string("upstream")
local mount = config.string("mount", "")

-- Hop-by-hop and framing headers: the relay's own connections set them.
local NOT_RELAYED = { host = true, connection = true, ["content-length"] = true,
  ["transfer-encoding"] = true, expect = true, ["keep-alive"] = true, date = true }

local function no_calls()
  return { list = 0, list_continued = 0, list_uploads = 0, delete = 0, other = 0,
           list_prefixes = {} }
end

local function operation(req)
  if req.method == "DELETE" then return "delete" end
  if req.method == "GET" and req.query["list-type"] then
    return req.query["continuation-token"] and "list_continued" or "list"
  end
  if req.method == "GET" and req.target:find("[?&]uploads") then return "list_uploads" end
  return "other"
end

local function relayed(headers)
  local kept = {}
  for name, value in pairs(headers) do
    if not NOT_RELAYED[name] then kept[name] = value end
  end
  return kept
end

service:get("/_relay/calls", function()
  return state:get("calls") or no_calls()
end)

service:put("/_relay/faults", function(req)
  state:put("faults", json.decode(req:body()))
  return { ok = true }
end)

service:any("/*path", function(req, res)
  local kind = operation(req)
  state:update(function(tx)
    local calls = tx:get("calls") or no_calls()
    calls[kind] = calls[kind] + 1
    if kind == "list" then
      local prefix = req.query.prefix or ""
      calls.list_prefixes[prefix] = (calls.list_prefixes[prefix] or 0) + 1
    end
    tx:put("calls", calls)
  end)
  local faults = state:get("faults") or {}
  if kind == "list_continued" and faults.fail_continued_lists then
    res:send(500, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
      .. "<Message>s3_relay: listing failure injected</Message></Error>",
      { ["Content-Type"] = "application/xml" })
    return
  end
  local has_body = req.method == "PUT" or req.method == "POST"
  local response = assert(http.request(req.method, upstream .. req.target:sub(#mount + 1),
    { headers = relayed(req.headers), body = has_body and req:body() or nil }))
  res:send(response.status, response.body, relayed(response.headers))
end)
