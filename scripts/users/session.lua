-- The web pages' session: a small table kept in a signed cookie (HttpOnly, SameSite=Lax, Secure
-- over https) as Flask's session was, so no server-side state needs cleaning up. It is signed,
-- not encrypted: it holds nothing the browser's user may not see (their identity, the CSRF
-- token, the PKCE verifier of their own sign-in). Expired or tampered cookies read as a fresh
-- session.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"

local M = {}
local Sessions = {}
Sessions.__index = Sessions

local COOKIE = "servicex_session"
local VERSION = "v1"

-- `secret`: SECRET_KEY (any length; a key for this purpose only is derived from it);
-- `lifetime`: seconds a session lasts after it was last written.
function M.new(secret, lifetime)
  return setmetatable({ key = crypto.hmac_sha256(secret, "depot users web session"), lifetime = lifetime }, Sessions)
end

function Sessions:sign(text) return crypto.base64url(crypto.hmac_sha256(self.key, text)) end

local function cookie_value(req, name)
  local header = req:header("Cookie") or ""
  for pair in header:gmatch("[^;]+") do
    local key, value = pair:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
    if key == name then return value end
  end
  return nil
end

local function fresh() return { csrf = crypto.token(24) } end

-- The request's session (a new one, with a new CSRF token, when there is none valid).
function Sessions:read(req)
  local value = cookie_value(req, COOKIE)
  local signed, signature = (value or ""):match("^(" .. VERSION .. "%.[%w_-]+)%.([%w_-]+)$")
  if not signed or not crypto.equals(self:sign(signed), signature) then return fresh() end
  local session = json.decode(crypto.unbase64url(signed:sub(#VERSION + 2)) or "")
  if type(session) ~= "table" or type(session.expires) ~= "number" or session.expires < depot.now() then
    return fresh()
  end
  if type(session.csrf) ~= "string" then session.csrf = crypto.token(24) end
  return session
end

local function attributes(path, secure, max_age)
  return string.format("; Path=%s; Max-Age=%d; HttpOnly; SameSite=Lax%s", path, max_age, secure and "; Secure" or "")
end

-- Sets the cookie carrying `session` on `res`; `path` is the mount, `secure` when served over https.
function Sessions:write(res, session, path, secure)
  session.expires = math.floor(depot.now()) + self.lifetime
  local signed = VERSION .. "." .. crypto.base64url(json.encode(session))
  res:header("Set-Cookie", COOKIE .. "=" .. signed .. "." .. self:sign(signed) .. attributes(path, secure, self.lifetime))
end

-- Ends the session: the browser drops the cookie.
function Sessions:clear(res, path, secure)
  res:header("Set-Cookie", COOKIE .. "=" .. attributes(path, secure, 0))
end

-- Whether `submitted` is the session's CSRF token (constant time).
function M.csrf_ok(session, submitted)
  return type(submitted) == "string" and submitted ~= "" and crypto.equals(submitted, session.csrf)
end

return M
