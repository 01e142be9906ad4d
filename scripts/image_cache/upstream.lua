-- The Kentik API call for one entry: POST <KENTIK_API_URL>/query/topXchart with the query (null
-- object members dropped), retried on 429/502/503/504 and transport errors, and every outcome
-- turned into an image or a stored error — never left pending.
local http = require "http"
local json = require "json"
local crypto = require "crypto"

local M = {}

local MIME_TYPES = { ["image/png"] = "png", ["image/jpeg"] = "jpeg", ["image/svg+xml"] = "svg", ["application/pdf"] = "pdf" }

-- The Kentik SDK's as_dict(): object members whose value is null are dropped, at any depth;
-- nulls inside arrays stay.
local function without_nulls(value)
  if type(value) ~= "table" then return value end
  local is_array = getmetatable(value) == json.array_mt
  local copy = setmetatable({}, getmetatable(value))
  for key, item in pairs(value) do
    if is_array or item ~= json.null then copy[key] = without_nulls(item) end
  end
  return copy
end

-- The request body for a query (text of valid JSON, as posted), or nil when it is no object. A
-- text without "null" anywhere has no null member to drop: it is sent as posted, saving a decode
-- and an encode of a query that is often kilobytes long.
local function request_body(query_text)
  if not query_text:find("null", 1, true) then
    return query_text:find("^%s*{") and query_text or nil
  end
  local query = json.decode(query_text)
  if type(query) ~= "table" or getmetatable(query) == json.array_mt then return nil end
  return json.encode(without_nulls(query))
end

-- Returns { image = bytes, mime = ... } or { status_code = n, msgs = { ... } }.
function M.fetch(settings, query_text)
  local body = request_body(query_text)
  if not body then return { status_code = 502, msgs = { "api_query must be a JSON object" } } end
  local response, err, kind = http.request("POST", settings.api_url .. "/query/topXchart", {
    headers = {
      ["Content-Type"] = "application/json",
      ["X-CH-Auth-Email"] = settings.email,
      ["X-CH-Auth-API-Token"] = settings.token,
      ["User-Agent"] = "depot-image-cache",
    },
    body = body,
    timeout = settings.timeout,
    connect_timeout = settings.timeout,
    retries = settings.retries,
    retry_on = { 429, 502, 503, 504 },
    backoff = settings.backoff,
  })
  if not response then
    if kind == "timeout" then return { status_code = 500, msgs = { "Request timeout" } } end
    return { status_code = 504, msgs = { err } }
  end
  if response.status >= 400 then return { status_code = response.status, msgs = { response.body } } end
  local answer = json.decode(response.body)
  local data_uri = type(answer) == "table" and answer.dataUri
  if type(data_uri) ~= "string" then return { status_code = 502, msgs = { "Kentik API answered without a dataUri" } } end
  local mime, encoding, payload = data_uri:match("^data:([^;,]+);([^,]+),(.*)$")
  if not MIME_TYPES[mime or ""] or encoding ~= "base64" then
    return { status_code = 502, msgs = { "Kentik API answered an unsupported image type: " .. tostring(mime) } }
  end
  local image = crypto.unbase64(payload)
  if not image then return { status_code = 502, msgs = { "Kentik API answered an undecodable image" } } end
  return { image = image, mime = mime, type = MIME_TYPES[mime] }
end

return M
