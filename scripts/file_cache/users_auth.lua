-- Who is calling when no KBASE_AUTH_URL is set: Depot's own users service is the token authority.
-- The Authorization header carries one of its access tokens ("Bearer <JWT>", from its /login),
-- checked like the users policy checks them (signature with the key the users service signs
-- with, expiry, a user that exists and is no longer pending), in process: no HTTP call. The
-- token_id is "depot-users:" .. the user's sub, so cache ids made this way differ from the ones
-- a KBase auth service's tokens give for the same body (docs/services/file-cache.md).
local depot = require "depot"
local Policy = require "users.policy"

local M = {}
M.__index = M

M.PREFIX = "depot-users:"

-- `settings`: the file cache's config getters (JWT_SECRET_KEY, when the users service has one).
function M.new(settings)
  return setmetatable({ policy = Policy.new(settings, { enabled = true }) }, M)
end

-- The caller's token_id, or the request fails: 400 without the header (as with KBase), 403 with
-- the users service's reason for any other refused token.
function M:token_id(req)
  local token = req:header("Authorization")
  if token == nil or token == "" then depot.fail(400, "Missing header: Authorization") end
  local user, _, body = self.policy:auth_required(req)
  if not user then depot.fail(403, body.message or body.msg) end
  return M.PREFIX .. user.sub
end

return M
