-- A minimal service: the route the benchmark measures, and a quick check that Depot is up.
local service = ...

-- With "auth": "users" in its config section, the ServiceX policy guards it (config/users.json).
require("users.policy").guard(service)

service:get("/hello", function()
  return "hello\n"
end)

service:get("/health", function()
  return { status = "ok" }
end)
