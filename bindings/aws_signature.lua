-- Lua module `aws_signature`: AWS Signature Version 4 (AWS4-HMAC-SHA256), the signing of S3
-- requests — in an Authorization header or in a presigned URL's query. Pure computation on
-- crypto's SHA-256 and HMAC (libsodium); checked against AWS's published examples
-- (tests/bindings/blob_test.cpp). Used by the blob module's S3 backend (bindings/blob_s3.lua).
--
--   local signature = require "aws_signature"
--   local headers = signature.sign({ method = "GET", host = "bucket.s3.amazonaws.com",
--     path = "/key", query = {}, headers = { range = "bytes=0-9" }, payload_hash = hash,
--     region = "us-east-1", service = "s3", access_key = id, secret_key = secret, time = now })
--   --> headers to send: the given ones plus host, x-amz-date, x-amz-content-sha256, authorization
--
-- `path` is the already encoded path (signature.encode_path makes one from a key); query values
-- are raw (encoded here). Secrets: nothing is logged, and the secret key never leaves this file
-- but as derived HMAC keys.
local crypto = require "crypto"

local M = {}

M.UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
M.EMPTY_PAYLOAD = crypto.hex(crypto.sha256(""))

-- RFC 3986 percent-encoding as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~, upper-case hex.
function M.encode(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- An object key as a URL path: each segment encoded, the slashes kept (S3 does not encode twice).
function M.encode_path(key)
  return (key:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function canonical_query(query)
  local pairs_list = {}
  for name, value in pairs(query) do
    pairs_list[#pairs_list + 1] = M.encode(name) .. "=" .. M.encode(tostring(value))
  end
  table.sort(pairs_list)
  return table.concat(pairs_list, "&")
end

local function trim(value) return (tostring(value):gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")) end

-- Canonical headers and the signed header list, from lower-cased names.
local function canonical_headers(headers)
  local names, lowered = {}, {}
  for name, value in pairs(headers) do
    local lower = name:lower()
    lowered[lower] = trim(value)
    names[#names + 1] = lower
  end
  table.sort(names)
  local lines = {}
  for i, name in ipairs(names) do lines[i] = name .. ":" .. lowered[name] .. "\n" end
  return table.concat(lines), table.concat(names, ";")
end

local function timestamps(time)
  return os.date("!%Y%m%dT%H%M%SZ", math.floor(time)), os.date("!%Y%m%d", math.floor(time))
end

local function signing_key(secret_key, date, region, service)
  local key = crypto.hmac_sha256("AWS4" .. secret_key, date)
  key = crypto.hmac_sha256(key, region)
  key = crypto.hmac_sha256(key, service)
  return crypto.hmac_sha256(key, "aws4_request")
end

-- The signature (hex) of a request whose headers already hold everything signed.
local function signature(request, headers, query, amz_date, date)
  local header_text, signed = canonical_headers(headers)
  local canonical = table.concat({ request.method, request.path, canonical_query(query),
    header_text, signed, request.payload_hash }, "\n")
  local scope = table.concat({ date, request.region, request.service, "aws4_request" }, "/")
  local to_sign = table.concat({ "AWS4-HMAC-SHA256", amz_date, scope,
    crypto.hex(crypto.sha256(canonical)) }, "\n")
  local key = signing_key(request.secret_key, date, request.region, request.service)
  return crypto.hex(crypto.hmac_sha256(key, to_sign)), signed, scope
end

-- The headers to send (a new table): request.headers plus host, x-amz-date, and, for S3,
-- x-amz-content-sha256 (the payload hash), and the Authorization header.
function M.sign(request)
  local amz_date, date = timestamps(request.time)
  local headers = {}
  for name, value in pairs(request.headers or {}) do headers[name:lower()] = value end
  headers.host = request.host
  headers["x-amz-date"] = amz_date
  if request.service == "s3" then headers["x-amz-content-sha256"] = request.payload_hash end
  local hex, signed, scope = signature(request, headers, request.query or {}, amz_date, date)
  headers.authorization = string.format("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
    request.access_key, scope, signed, hex)
  return headers
end

-- The query string (without "?") of a presigned URL valid for `expires` seconds from
-- request.time: request.query plus the X-Amz-* parameters; only the host header is signed and the
-- payload is UNSIGNED-PAYLOAD, as for any presigned S3 URL.
function M.presign(request, expires)
  local amz_date, date = timestamps(request.time)
  local query = {}
  for name, value in pairs(request.query or {}) do query[name] = value end
  query["X-Amz-Algorithm"] = "AWS4-HMAC-SHA256"
  query["X-Amz-Credential"] = request.access_key .. "/" .. date .. "/" .. request.region .. "/"
    .. request.service .. "/aws4_request"
  query["X-Amz-Date"] = amz_date
  query["X-Amz-Expires"] = tostring(math.floor(expires))
  query["X-Amz-SignedHeaders"] = "host"
  local signed_request = setmetatable({ payload_hash = M.UNSIGNED_PAYLOAD }, { __index = request })
  local hex = signature(signed_request, { host = request.host }, query, amz_date, date)
  return canonical_query(query) .. "&X-Amz-Signature=" .. hex
end

return M
