-- A minimal service: the route the benchmark measures, and a quick check that Depot is up.
local service = ...
local schema = require "openapi.schema"

-- With "auth": "users" in its config section, the ServiceX policy guards it (config/users.json).
require("users.policy").guard(service)

service:get("/hello", function()
  return "hello\n"
end, { summary = "Say hello", responses = { [200] = { description = "A greeting", text = schema.string({ const = "hello\n" }) } } })

service:get("/health", function()
  return { status = "ok" }
end, { summary = "Whether the server is up", responses = { [200] = { description = "It is",
  json = schema.object({ status = schema.required(schema.string({ const = "ok" })) }) } } })

-- Last: a service that failed to load must not have claimed its mounts' API pages.
local openapi = require "openapi"
openapi.serve(service, { title = "Hello", version = "1.0",
  description = "A minimal service: the route the benchmark measures, and a check that Depot is up.",
  responses = { [500] = { description = "A bug", json = openapi.ENGINE_ERROR } } })
