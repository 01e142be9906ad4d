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

-- A path as the router sees it: empty segments and a trailing slash do not count, so "/logs/",
-- "/logs" and "//logs//" are one route and must be one rule.
local function route_path(path)
  local normal = path:gsub("/+", "/"):gsub("(.)/$", "%1")
  return normal
end

local CHECKS = { user = M.auth_required, admin = M.admin_required }

-- auth_rules as two lookups: "<METHOD> <path>" (exact) and "<METHOD> <path>/*" (that path and
-- everything under it), by "<METHOD> <normal path>"; "<METHOD>" and "*" as they are.
local function compile_rules(service, rules)
  local exact, below = {}, {}
  for key, rule in pairs(rules) do
    if rule ~= "none" and not CHECKS[rule] then
      error(string.format("users.policy: %s: auth_rules[%q] must be \"user\", \"admin\" or \"none\"",
        service.name, key))
    end
    local method, path = key:match("^(%S+)%s+(/.*)$")
    if not path then
      exact[key:upper()] = rule
    elseif path:sub(-2) == "/*" then
      below[method:upper() .. " " .. route_path(path:sub(1, -3) .. "/")] = rule
    else
      exact[method:upper() .. " " .. route_path(path)] = rule
    end
  end
  return exact, below
end

-- The rule of `method` on `path` (normal): exact, then the nearest "/*" rule above it, then the
-- method's own; nil if none names the method.
local function method_rule(exact, below, method, path)
  local rule = exact[method .. " " .. path]
  if rule then return rule end
  local at = path
  while true do
    rule = below[method .. " " .. at]
    if rule then return rule end
    if at == "/" then break end
    at = at:match("^(.*)/[^/]*$")
    if at == "" then at = "/" end
  end
  return exact[method]
end

-- Puts the policy in front of `service` when its config says "auth": "users". The rule of a
-- request is the first of its config's auth_rules under "<METHOD> <path>", the nearest
-- "<METHOD> <path>/*" above it, "<METHOD>" and "*" ("user", "admin" or "none"; default "user").
-- HEAD without rules of its own follows GET's, as the router runs the GET route for it. Handlers
-- find the user in req.user (nil with auth disabled or rule "none").
function M.guard(service)
  local settings = require("config").of(service)
  if settings.string("auth", "") ~= "users" then return end
  local exact, below = compile_rules(service, settings.table("auth_rules", {}))
  local policy = M.new(settings)
  service:before(function(req)
    local path = mounted_path(service, route_path(req.path))
    local rule = method_rule(exact, below, req.method, path)
    if not rule and req.method == "HEAD" then rule = method_rule(exact, below, "GET", path) end
    rule = rule or exact["*"] or "user"
    if rule == "none" then return end
    local user, status, body = CHECKS[rule](policy, req)
    if not user then return status, body end
    if user ~= true then req.user = user end
  end)
end

return M
