-- The ServiceX authorization rules (spec §4.4): auth_required (a valid access token of an
-- existing, non-pending user) and admin_required, with the original's answers; usable by the
-- users service itself and, through policy.guard, in front of any other service.
local depot = require "depot"
local jwt = require "jwt"
local secret = require "users.secret"
local store = require "users.store"

local M = {}
M.__index = M

local NO_USER = "Not Authorized: No user found matching this API token. Your account may have been "
  .. "deleted. Please visit the ServiceX website to obtain a new API token."
local PENDING = "Not Authorized: Your account is still pending. An administrator should approve it "
  .. "shortly. If not, please contact the ServiceX admins via email or Slack."
local NOT_ADMIN = "Not Authorized: This resource is restricted to administrators."

-- `settings`: the config getters of the service using it (ENABLE_AUTH, JWT_SECRET_KEY; without
-- the key, the one users/secret.lua generated). `options.enabled` overrides ENABLE_AUTH, for a
-- service that always needs to know who calls.
function M.new(settings, options)
  local enabled = settings.boolean("ENABLE_AUTH", false)
  if options and options.enabled ~= nil then enabled = options.enabled end
  return setmetatable({ enabled = enabled, secret = secret.key(settings) }, M)
end

-- The claims of the request's bearer token of `kind` ("access" or "refresh"), or nil, status,
-- body in flask-jwt-extended's shape ({"msg": ...}).
function M:claims(req, kind)
  local token, status, message = jwt.bearer(req:header("Authorization"))
  local claims
  if token then claims, status, message = jwt.decode(self.secret, token, depot.now()) end
  if claims and claims.type ~= kind then
    claims, status, message = nil, 422, "Only " .. kind .. " tokens are allowed"
  end
  if not claims then return nil, status, { msg = message } end
  return claims
end

-- The user of a valid access token, or nil, status, body. The decorators answer a missing
-- header in their own shape ({"message": ...}); other token errors in the library's.
local function token_user(self, req)
  local claims, status, body = self:claims(req, "access")
  if not claims then
    if status == 401 and body.msg == "Missing Authorization Header" then body = { message = body.msg } end
    return nil, status, body
  end
  local user = type(claims.identity) == "string" and store.by_sub(claims.identity) or nil
  if not user then return nil, 401, { message = NO_USER } end
  return user
end

-- auth_required: the user (or true with auth disabled), or nil, status, body.
function M:auth_required(req)
  if not self.enabled then return true end
  local user, status, body = token_user(self, req)
  if not user then return nil, status, body end
  if user.pending then return nil, 401, { message = PENDING } end
  return user
end

-- admin_required: the admin (or true with auth disabled), or nil, status, body. Pending is not
-- checked for admins, as in the original.
function M:admin_required(req)
  if not self.enabled then return true end
  local user, status, body = token_user(self, req)
  if not user then
    if body.message == NO_USER then body = { message = NOT_ADMIN } end
    return nil, status, body
  end
  if not user.admin then return nil, 401, { message = NOT_ADMIN } end
  return user
end

-- The path of `req` under the mount it came through ("/" for the mount itself).
local function mounted_path(service, path)
  local best = ""
  for _, mount in ipairs(service.mounts or {}) do
    local prefix = mount:gsub("/$", "")
    if #prefix > #best and (path == prefix or path:sub(1, #prefix + 1) == prefix .. "/") then best = prefix end
  end
  local rest = path:sub(#best + 1)
  return rest == "" and "/" or rest
end

local CHECKS = { user = M.auth_required, admin = M.admin_required }

-- Puts the policy in front of `service` when its config says "auth": "users". The rule of a
-- request is the first of its config's auth_rules under "<METHOD> <path>", "<METHOD>" and "*"
-- ("user", "admin" or "none"; default "user"). Handlers find the user in req.user (nil with
-- auth disabled or rule "none").
function M.guard(service)
  local settings = require("config").of(service)
  if settings.string("auth", "") ~= "users" then return end
  local rules = settings.table("auth_rules", {})
  for key, rule in pairs(rules) do
    if rule ~= "none" and not CHECKS[rule] then
      error(string.format("users.policy: %s: auth_rules[%q] must be \"user\", \"admin\" or \"none\"",
        service.name, key))
    end
  end
  local policy = M.new(settings)
  service:before(function(req)
    local rule = rules[req.method .. " " .. mounted_path(service, req.path)] or rules[req.method] or rules["*"] or "user"
    if rule == "none" then return end
    local user, status, body = CHECKS[rule](policy, req)
    if not user then return status, body end
    if user ~= true then req.user = user end
  end)
end

return M
