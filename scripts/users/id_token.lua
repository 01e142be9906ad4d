-- Checks an OpenID Connect ID token (OpenID Connect Core §3.1.3.7): a JWS signed with RS256 or
-- ES256 by one of the provider's keys (its JWKS), then iss, aud (and azp), exp, iat and nonce.
-- Pure: the caller fetches the keys. Every refusal names its reason, for the log and the page.
local crypto = require "crypto"
local json = require "json"

local M = {}

-- Seconds of clock difference tolerated between the provider and this server.
M.LEEWAY = 60

local ALGORITHM_KEY_TYPES = { RS256 = "RSA", ES256 = "EC" }

local function object(text)
  local value = text and json.decode(text)
  if type(value) == "table" and getmetatable(value) == json.object_mt then return value end
  return nil
end

-- The token's header, claims, signing input and raw signature; nil, reason if it is no JWS.
function M.parse(token)
  local header_segment, payload_segment, signature_segment = token:match("^([^.]+)%.([^.]+)%.([^.]*)$")
  if not header_segment then return nil, "the ID token is not a signed JWT" end
  local header = object(crypto.unbase64url(header_segment))
  local claims = object(crypto.unbase64url(payload_segment))
  local signature = crypto.unbase64url(signature_segment)
  if not (header and claims and signature) then return nil, "the ID token is not a signed JWT" end
  return { header = header, claims = claims, signing_input = header_segment .. "." .. payload_segment,
    signature = signature }
end

-- The keys of `jwks` that may have signed a token with this header: the one with its kid, or,
-- when the token names none, every key of the algorithm's type.
function M.candidate_keys(jwks, header)
  local keys = {}
  local wanted_type = ALGORITHM_KEY_TYPES[header.alg]
  for _, key in ipairs(type(jwks) == "table" and type(jwks.keys) == "table" and jwks.keys or {}) do
    if type(key) == "table" and key.kty == wanted_type and (key.use == nil or key.use == "sig")
        and (key.alg == nil or key.alg == header.alg) and (header.kid == nil or key.kid == header.kid) then
      keys[#keys + 1] = key
    end
  end
  return keys
end

local function audience_ok(claims, client_id)
  local aud = claims.aud
  if aud == client_id then return true end
  if type(aud) ~= "table" then return false end
  local found = false
  for _, entry in ipairs(aud) do if entry == client_id then found = true end end
  -- Several audiences: the token must have been issued to us (azp, §3.1.3.7 items 4 and 5).
  if found and #aud > 1 then return claims.azp == client_id end
  return found
end

-- The claims of `token` once its signature and claims check out, or nil, reason. `expected`:
-- `jwks` (the provider's key set), `issuer`, `client_id`, `nonce`, `now` (seconds).
function M.verify(token, expected)
  local parsed, problem = M.parse(token)
  if not parsed then return nil, problem end
  local header, claims = parsed.header, parsed.claims
  -- Only asymmetric algorithms: "none" and HS256 (keyed with the public client secret) are refused.
  if not ALGORITHM_KEY_TYPES[header.alg] then
    return nil, "the ID token's alg " .. tostring(header.alg) .. " is not allowed (RS256 or ES256)"
  end
  local keys = M.candidate_keys(expected.jwks, header)
  if #keys == 0 then return nil, "no key of the provider matches the ID token" end
  local verified = false
  for _, key in ipairs(keys) do
    if crypto.jwk_verify(key, header.alg, parsed.signing_input, parsed.signature) == true then verified = true end
  end
  if not verified then return nil, "the ID token's signature does not verify" end
  if claims.iss ~= expected.issuer then return nil, "the ID token's issuer is not the provider" end
  if not audience_ok(claims, expected.client_id) then return nil, "the ID token was not issued to this client" end
  if type(claims.exp) ~= "number" or claims.exp + M.LEEWAY < expected.now then
    return nil, "the ID token has expired"
  end
  if type(claims.iat) ~= "number" or claims.iat - M.LEEWAY > expected.now then
    return nil, "the ID token's issue time is missing or in the future"
  end
  if type(claims.nonce) ~= "string" or not crypto.equals(claims.nonce, expected.nonce) then
    return nil, "the ID token's nonce is not this sign-in's"
  end
  if type(claims.sub) ~= "string" or claims.sub == "" then return nil, "the ID token has no subject" end
  return claims
end

return M
