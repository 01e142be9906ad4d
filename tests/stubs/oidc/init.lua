-- A stand-in OpenID Connect provider, served by Depot in the tests: discovery, an authorize
-- endpoint that approves one configured test identity at once (no login page) and redirects back
-- with a code and the state, a token endpoint that checks the client secret, the redirect URI,
-- the PKCE verifier (S256) and that each code is used once, and a JWKS with the test keys
-- (test_keys.json: an RSA key for RS256, a P-256 key for ES256). Its issuer is
-- http://<Host><mount>. Config: CLIENT_ID, CLIENT_SECRET, and the identity's SUB, EMAIL, NAME,
-- ORGANIZATION.
--
-- PUT /control with a JSON object makes the following ID tokens misbehave, for the relying
-- party's refusals: `kid` (sign with "test-rsa" or "test-ec"), `claims` (merged over the
-- token's: {"aud": "someone-else"}), `tamper` (change the claims after signing), `alg_none`
-- (an unsigned token), `identity` (another subject). {} restores the defaults. GET /codes tells
-- how many codes were issued and redeemed.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"
local kv = require "kv"
local service = ...
local config = require("config").of(service)

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local key_file = assert(io.open(here .. "/test_keys.json"))
local private_keys = {}
for _, key in ipairs(json.decode(key_file:read("*a")).keys) do private_keys[key.kid] = key end
key_file:close()

local PUBLIC_MEMBERS = { "kty", "kid", "alg", "use", "n", "e", "crv", "x", "y" }
local CODE_SECONDS = 60

-- In kv: each worker thread runs its own copy of this script.
local state = kv.open("oidc_stub", { durable = false })

local client_id = config.string("CLIENT_ID", "depot-test-client")
local client_secret = config.string("CLIENT_SECRET", "depot-test-secret")
local default_identity = {
  sub = config.string("SUB", "7f7a3c9e-1d2b-4c5a-9e8f-0a1b2c3d4e5f"),
  email = config.string("EMAIL", "alice@example.org"),
  name = config.string("NAME", "Alice Example"),
  organization = config.string("ORGANIZATION", "Example University"),
}

local function issuer(req)
  local request_path = req.path:gsub("/+$", "")
  local route = req.service_route_path or ""
  return "http://" .. req:header("Host") .. request_path:sub(1, #request_path - #route)
end

local function route(method, path, handler)
  service:route(method, path, function(req, res)
    req.service_route_path = path:gsub("/+$", "")
    return handler(req, res)
  end)
end

local function url_decode(text)
  return (text:gsub("+", " "):gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function url_encode(text)
  return (text:gsub("[^%w%-%._~]", function(char) return string.format("%%%02X", char:byte()) end))
end

local function form(body)
  local values = {}
  for pair in body:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    values[url_decode(name)] = url_decode(value)
  end
  return values
end

local function control() return state:get("control") or {} end

route("GET", "/.well-known/openid-configuration", function(req)
  local base = issuer(req)
  return {
    issuer = base, authorization_endpoint = base .. "/authorize", token_endpoint = base .. "/token",
    jwks_uri = base .. "/jwks", response_types_supported = { "code" }, subject_types_supported = { "public" },
    id_token_signing_alg_values_supported = { "RS256", "ES256" }, code_challenge_methods_supported = { "S256" },
    token_endpoint_auth_methods_supported = { "client_secret_basic", "client_secret_post" },
  }
end)

route("GET", "/jwks", function()
  local keys = setmetatable({}, json.array_mt)
  for _, kid in ipairs({ "test-rsa", "test-ec" }) do
    local public = {}
    for _, name in ipairs(PUBLIC_MEMBERS) do public[name] = private_keys[kid][name] end
    keys[#keys + 1] = public
  end
  return { keys = keys }
end)

route("PUT", "/control", function(req)
  state:put("control", req:json())
  return { ok = true }
end)

route("GET", "/codes", function()
  return { issued = state:get("issued") or 0, redeemed = state:get("redeemed") or 0 }
end)

local function authorize_error(message) return 400, { error = "invalid_request", error_description = message } end

route("GET", "/authorize", function(req)
  local query = req.query
  if query.client_id ~= client_id then return authorize_error("unknown client_id") end
  if query.response_type ~= "code" then return authorize_error("response_type must be code") end
  if query.code_challenge_method ~= "S256" or not query.code_challenge then return authorize_error("PKCE S256 required") end
  if not (query.redirect_uri and query.state and query.nonce) then return authorize_error("redirect_uri, state and nonce required") end
  local code = crypto.token(24)
  state:update(function(tx)
    tx:put("code:" .. code, { challenge = query.code_challenge, nonce = query.nonce, redirect_uri = query.redirect_uri,
      expires = depot.now() + CODE_SECONDS })
    tx:put("issued", (tx:get("issued") or 0) + 1)
  end)
  local separator = query.redirect_uri:find("?", 1, true) and "&" or "?"
  return 302, "", { Location = query.redirect_uri .. separator .. "code=" .. url_encode(code) .. "&state=" .. url_encode(query.state) }
end)

local function token_error(status, kind, message) return status, { error = kind, error_description = message } end

-- The client's credentials, from HTTP Basic or the form (client_secret_basic or _post).
local function client_credentials(req, fields)
  local basic = (req:header("Authorization") or ""):match("^Basic%s+(.+)$")
  if basic then
    local id, secret = (crypto.unbase64(basic) or ""):match("^([^:]*):(.*)$")
    return id and url_decode(id), secret and url_decode(secret)
  end
  return fields.client_id, fields.client_secret
end

local function signed_token(header, claims, behaviour)
  local header_segment = crypto.base64url(json.encode(header))
  local payload_segment = crypto.base64url(json.encode(claims))
  local signing_input = header_segment .. "." .. payload_segment
  if behaviour.alg_none then return signing_input .. "." end
  local signature = assert(crypto.jwk_sign(private_keys[header.kid], header.alg, signing_input))
  if behaviour.tamper then
    claims.email = "mallory@example.org"
    payload_segment = crypto.base64url(json.encode(claims))
  end
  return header_segment .. "." .. payload_segment .. "." .. crypto.base64url(signature)
end

route("POST", "/token", function(req)
  local fields = form(req:body())
  local id, secret = client_credentials(req, fields)
  if id ~= client_id or secret ~= client_secret then return token_error(401, "invalid_client", "bad client credentials") end
  if fields.grant_type ~= "authorization_code" then return token_error(400, "unsupported_grant_type", "code only") end
  -- Taken out in the same transaction it is read: a code works once, however many race for it.
  local grant = state:update(function(tx)
    local key = "code:" .. (fields.code or "")
    local found = tx:get(key)
    if found then
      tx:delete(key)
      tx:put("redeemed", (tx:get("redeemed") or 0) + 1)
    end
    return found
  end)
  if not grant or grant.expires < depot.now() then return token_error(400, "invalid_grant", "unknown, used or expired code") end
  if fields.redirect_uri ~= grant.redirect_uri then return token_error(400, "invalid_grant", "redirect_uri differs") end
  if crypto.base64url(crypto.sha256(fields.code_verifier or "")) ~= grant.challenge then
    return token_error(400, "invalid_grant", "PKCE verification failed")
  end
  local behaviour = control()
  local identity = behaviour.identity or default_identity
  local now = math.floor(depot.now())
  local claims = { iss = issuer(req), aud = client_id, iat = now, exp = now + 300, nonce = grant.nonce }
  for name, value in pairs(identity) do claims[name] = value end
  for name, value in pairs(behaviour.claims or {}) do claims[name] = value end
  local kid = behaviour.kid or "test-rsa"
  local header = { typ = "JWT", alg = behaviour.alg_none and "none" or private_keys[kid].alg, kid = kid }
  return {
    access_token = crypto.token(24), token_type = "Bearer", expires_in = 300,
    id_token = signed_token(header, claims, behaviour),
  }
end)
