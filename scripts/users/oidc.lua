-- The OpenID Connect relying party of the users service's web sign-in: the provider's settings,
-- its discovery document and key set (fetched when first needed and kept per worker), the
-- authorization-code request with PKCE (S256), state and nonce, and the code exchange whose ID
-- token id_token.lua checks. Globus (the original's provider) is an OpenID provider like any other.
local crypto = require "crypto"
local depot = require "depot"
local http = require "http"
local json = require "json"
local log = require "log"
local id_token = require "users.id_token"

local M = {}
local Provider = {}
Provider.__index = Provider

local GLOBUS_ISSUER = "https://auth.globus.org"
-- How long a discovery document or key set is kept before it is fetched again.
local CACHE_SECONDS = 3600
-- A token naming a key we do not have refetches the key set, at most this often (key rotation
-- without letting forged kids make us hammer the provider).
local KEY_REFETCH_SECONDS = 10
local HTTP_OPTIONS = { timeout = 10, retries = 2, backoff = 0.5 }

local function url_encode(text)
  return (text:gsub("[^%w%-%._~]", function(char) return string.format("%%%02X", char:byte()) end))
end

local function query_string(fields)
  local pairs_list = {}
  for _, field in ipairs(fields) do pairs_list[#pairs_list + 1] = url_encode(field[1]) .. "=" .. url_encode(field[2]) end
  return table.concat(pairs_list, "&")
end

-- The provider the settings name, or nil when there is none: OIDC_ISSUER, OIDC_CLIENT_ID and
-- OIDC_CLIENT_SECRET, or the original's GLOBUS_CLIENT_ID and GLOBUS_CLIENT_SECRET with Globus's
-- issuer. An issuer without a client id raises (the service is not mounted, the log says why).
function M.from_config(config)
  local client_id = config.string("OIDC_CLIENT_ID", config.string("GLOBUS_CLIENT_ID", ""))
  local default_issuer = config.string("GLOBUS_CLIENT_ID", "") ~= "" and GLOBUS_ISSUER or ""
  local issuer = config.string("OIDC_ISSUER", default_issuer):gsub("/+$", "")
  if issuer == "" then return nil end
  if client_id == "" then error("users: OIDC_ISSUER is set but OIDC_CLIENT_ID is not", 0) end
  return setmetatable({
    issuer = issuer, client_id = client_id,
    client_secret = config.string("OIDC_CLIENT_SECRET", config.string("GLOBUS_CLIENT_SECRET", "")),
    scopes = config.string("OIDC_SCOPES", "openid profile email"),
    cache = {},
  }, Provider)
end

-- A JSON object fetched from `url`, or nil, reason.
local function fetch_json(url, what)
  local response, err = http.get(url, HTTP_OPTIONS)
  if not response then return nil, what .. " could not be fetched: " .. err end
  if response.status ~= 200 then return nil, what .. " answered " .. response.status end
  local document = json.decode(response.body)
  if type(document) ~= "table" then return nil, what .. " is not JSON" end
  return document
end

-- `name`'s cached document, fetched anew when older than `max_age`.
function Provider:cached(name, max_age, fetch)
  local entry = self.cache[name]
  if entry and depot.monotonic() - entry.at < max_age then return entry.value end
  local value, problem = fetch()
  if not value then return nil, problem end
  self.cache[name] = { value = value, at = depot.monotonic() }
  return value
end

-- The discovery document (/.well-known/openid-configuration), checked to be this issuer's.
function Provider:discovery()
  return self:cached("discovery", CACHE_SECONDS, function()
    local document, problem = fetch_json(self.issuer .. "/.well-known/openid-configuration", "the discovery document")
    if not document then return nil, problem end
    if document.issuer ~= self.issuer then return nil, "the discovery document is not the issuer's" end
    for _, name in ipairs({ "authorization_endpoint", "token_endpoint", "jwks_uri" }) do
      if type(document[name]) ~= "string" then return nil, "the discovery document has no " .. name end
    end
    return document
  end)
end

function Provider:keys(max_age)
  local discovery, problem = self:discovery()
  if not discovery then return nil, problem end
  return self:cached("jwks", max_age, function() return fetch_json(discovery.jwks_uri, "the key set") end)
end

-- Starts a sign-in: the provider's authorization URL and what the callback must find again
-- (state, nonce, PKCE verifier), kept by the caller in the session. nil, reason on failure.
function Provider:authorization(redirect_uri)
  local discovery, problem = self:discovery()
  if not discovery then return nil, problem end
  local login = { state = crypto.token(24), nonce = crypto.token(24), verifier = crypto.token(48),
    redirect_uri = redirect_uri, started = depot.now() }
  local separator = discovery.authorization_endpoint:find("?", 1, true) and "&" or "?"
  local url = discovery.authorization_endpoint .. separator .. query_string({
    { "response_type", "code" }, { "client_id", self.client_id }, { "redirect_uri", redirect_uri },
    { "scope", self.scopes }, { "state", login.state }, { "nonce", login.nonce },
    { "code_challenge", crypto.base64url(crypto.sha256(login.verifier)) }, { "code_challenge_method", "S256" },
  })
  return url, login
end

-- The token endpoint authentication the provider accepts: client_secret_basic unless it
-- advertises only client_secret_post.
local function token_request(self, discovery, fields)
  local methods = discovery.token_endpoint_auth_methods_supported
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json" }
  local basic = true
  if type(methods) == "table" then
    basic = false
    for _, method in ipairs(methods) do if method == "client_secret_basic" then basic = true end end
  end
  if basic then
    headers.Authorization = "Basic " .. crypto.base64(url_encode(self.client_id) .. ":" .. url_encode(self.client_secret))
  else
    fields[#fields + 1] = { "client_id", self.client_id }
    fields[#fields + 1] = { "client_secret", self.client_secret }
  end
  return http.post(discovery.token_endpoint, query_string(fields), {
    headers = headers, timeout = HTTP_OPTIONS.timeout,
  })
end

-- Exchanges the callback's `code` for tokens and checks the ID token against `login` (from
-- authorization). Returns its claims, or nil, reason.
function Provider:exchange(code, login)
  local discovery, problem = self:discovery()
  if not discovery then return nil, problem end
  local response, err = token_request(self, discovery, {
    { "grant_type", "authorization_code" }, { "code", code }, { "redirect_uri", login.redirect_uri },
    { "code_verifier", login.verifier },
  })
  if not response then return nil, "the token endpoint could not be reached: " .. err end
  local body = json.decode(response.body)
  if response.status ~= 200 or type(body) ~= "table" or type(body.id_token) ~= "string" then
    local reason = type(body) == "table" and type(body.error) == "string" and body.error or tostring(response.status)
    return nil, "the token endpoint refused the code (" .. reason .. ")"
  end
  local parsed = id_token.parse(body.id_token)
  local keys
  keys, problem = self:keys(CACHE_SECONDS)
  if keys and parsed and #id_token.candidate_keys(keys, parsed.header) == 0 then
    keys, problem = self:keys(KEY_REFETCH_SECONDS) -- the provider may have rotated its keys
  end
  if not keys then return nil, problem end
  local claims
  claims, problem = id_token.verify(body.id_token, {
    jwks = keys, issuer = self.issuer, client_id = self.client_id, nonce = login.nonce, now = depot.now(),
  })
  if not claims then
    log.warn("ID token refused", { reason = problem })
    return nil, problem
  end
  return claims
end

return M
