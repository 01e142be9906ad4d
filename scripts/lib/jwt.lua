-- JSON Web Tokens signed with HS256, as PyJWT 1.x and flask-jwt-extended 3.x make and check them:
-- the same claim layout, the same checks in the same order and the same error texts, so that
-- clients of a Flask service see the same answers and tokens from either side are interchangeable.
local crypto = require "crypto"
local json = require "json"

local M = {}

-- A random (version 4) UUID in its canonical text form, as Python's str(uuid.uuid4()).
function M.uuid4()
  local bytes = { crypto.random_bytes(16):byte(1, 16) }
  bytes[7] = bytes[7] % 16 + 64
  bytes[9] = bytes[9] % 64 + 128
  local hex = crypto.hex(string.char(unpack(bytes)))
  return string.format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
    hex:sub(17, 20), hex:sub(21, 32))
end

local HEADER = crypto.base64url(json.encode({ typ = "JWT", alg = "HS256" }))

-- The signed token for `claims` (a table) under `secret`.
function M.encode(secret, claims)
  local signing_input = HEADER .. "." .. crypto.base64url(json.encode(claims))
  return signing_input .. "." .. crypto.base64url(crypto.hmac_sha256(secret, signing_input))
end

-- The claims of a flask-jwt-extended token: `kind` is "access" or "refresh"; `lifetime` seconds
-- until `exp`, or nil for a token that never expires (refresh tokens with
-- JWT_REFRESH_TOKEN_EXPIRES = False).
function M.claims(identity, kind, now, lifetime)
  now = math.floor(now)
  local claims = { iat = now, nbf = now, jti = M.uuid4(), identity = identity, type = kind }
  if lifetime then claims.exp = now + lifetime end
  if kind == "access" then claims.fresh = false end
  return claims
end

-- PyJWT's int(): numbers (truncated) and strings of digits; nil otherwise.
local function integer(value)
  if type(value) == "number" and value == value and math.abs(value) ~= math.huge then
    return value >= 0 and math.floor(value) or math.ceil(value)
  end
  if type(value) == "string" and value:match("^%s*[+-]?%d+%s*$") then return tonumber(value) end
  return nil
end

-- A JSON object, or PyJWT's message: Python's json error text is "<reason>: line L column C (char N)".
local function segment_json(text, what)
  local value, err = json.decode(text)
  if value == nil then
    local position, reason = err:match("at (line %d+ column %d+ %(char %d+%)): (.*)$")
    return nil, "Invalid " .. what .. " string: " .. (reason and reason .. ": " .. position or err)
  end
  if type(value) ~= "table" or getmetatable(value) ~= json.object_mt then
    return nil, "Invalid " .. what .. " string: must be a json object"
  end
  return value
end

-- Checks `token` as flask-jwt-extended's decode_jwt does (PyJWT with algorithms=["HS256"], no
-- leeway). Returns the claims, or nil, status, message: 401 "Token has expired", otherwise 422
-- with PyJWT's or flask-jwt-extended's text.
function M.decode(secret, token, now)
  local signing_input, signature_segment = token:match("^(.*)%.([^.]*)$")
  local header_segment, payload_segment
  if signing_input then header_segment, payload_segment = signing_input:match("^([^.]*)%.(.*)$") end
  if not header_segment then return nil, 422, "Not enough segments" end
  local header_text = crypto.unbase64url(header_segment)
  if not header_text then return nil, 422, "Invalid header padding" end
  local header, problem = segment_json(header_text, "header")
  if not header then return nil, 422, problem end
  local payload_text = crypto.unbase64url(payload_segment)
  if not payload_text then return nil, 422, "Invalid payload padding" end
  local signature = crypto.unbase64url(signature_segment)
  if not signature then return nil, 422, "Invalid crypto padding" end
  if header.alg ~= "HS256" then return nil, 422, "The specified alg value is not allowed" end
  if not crypto.equals(crypto.hmac_sha256(secret, signing_input), signature) then
    return nil, 422, "Signature verification failed"
  end
  local claims
  claims, problem = segment_json(payload_text, "payload")
  if not claims then return nil, 422, problem end
  now = math.floor(now)
  if claims.iat ~= nil then
    local iat = integer(claims.iat)
    if not iat then return nil, 422, "Issued At claim (iat) must be an integer." end
    if iat > now then return nil, 422, "The token is not yet valid (iat)" end
  end
  if claims.nbf ~= nil then
    local nbf = integer(claims.nbf)
    if not nbf then return nil, 422, "Not Before claim (nbf) must be an integer." end
    if nbf > now then return nil, 422, "The token is not yet valid (nbf)" end
  end
  if claims.exp ~= nil then
    local exp = integer(claims.exp)
    if not exp then return nil, 422, "Expiration Time claim (exp) must be an integer." end
    if exp < now then return nil, 401, "Token has expired" end
  end
  if claims.identity == nil or claims.identity == json.null then
    return nil, 422, "Missing claim: identity"
  end
  if claims.type == nil then claims.type = "access" end
  if claims.type ~= "access" and claims.type ~= "refresh" then
    return nil, 422, "Missing or invalid claim: type"
  end
  return claims
end

-- The token of an "Authorization: Bearer <jwt>" header, or nil, status, message as
-- flask-jwt-extended answers a missing (401) or malformed (422) header.
function M.bearer(header_value)
  if header_value == nil then return nil, 401, "Missing Authorization Header" end
  local parts = {}
  for part in header_value:gmatch("%S+") do parts[#parts + 1] = part end
  if #parts ~= 2 or parts[1] ~= "Bearer" then
    return nil, 422, "Bad Authorization header. Expected value 'Bearer <JWT>'"
  end
  return parts[2]
end

return M
