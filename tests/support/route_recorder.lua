-- A test wrapper around a shipped service: runs scripts/<service name>/init.lua with the real
-- service object, recording every route it registers as it registers it, and answers that list at
-- GET <last mount>/registered-routes. The OpenAPI test compares it with the generated document, so the
-- expected routes come from the registrations themselves, not from a list written in the test.
local service = ...
local json = require "json"

local recorded = setmetatable({}, json.array_mt)
local register = service.route
function service.route(self, method, pattern, handler, options)
  options = options or {}
  recorded[#recorded + 1] = { method = method:upper(), pattern = pattern, documented = options.openapi ~= false,
                              mounts = options.mounts or json.null }
  return register(self, method, pattern, handler, options)
end

local script = assert(package.searchpath(service.name, package.path))
assert(loadfile(script))(service)

-- Under the service's last mount only: the first ones may be shared with other services.
register(service, "GET", "/registered-routes", function() return { routes = recorded } end,
  { openapi = false, before = false, mounts = { service.mounts[#service.mounts] } })
