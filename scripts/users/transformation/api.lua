-- The transformation request API of the users service (specs/users.md §4.9): reads its
-- settings, opens the dispatch queue, and registers the users' routes and the worker protocol.
local settings_reader = require "users.transformation.settings"
local store = require "users.transformation.store"
local routes = require "users.transformation.routes"
local internal = require "users.transformation.internal"

local M = {}

-- `policy`: the service's users.policy (auth_required); `config`: its config getters.
function M.mount(service, policy, config)
  local settings = settings_reader.read(config)
  store.configure(settings)
  routes.mount(service, policy, settings)
  internal.mount(service, settings)
end

return M
