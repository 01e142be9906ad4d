-- A minimal service: the route the benchmark measures, and a quick check that Depot is up.
local service = ...

service:get("/hello", function()
  return "hello\n"
end)

service:get("/health", function()
  return { status = "ok" }
end)
