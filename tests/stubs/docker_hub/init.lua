-- A stand-in for Docker Hub's tag API, served by Depot in the tests: GET
-- /v2/repositories/<repo>/tags/<tag> answers 200 for the images of its config's "images" list
-- ("repo:tag") and 404 for any other, as the registry does; every lookup is counted, so a test
-- can tell that no check was made.
local kv = require "kv"
local service = ...
local known = {}
for _, image in ipairs(service.config.images or {}) do known[image] = true end
local lookups = kv.open("docker_hub_stub", { durable = false })

service:get("/v2/repositories/*path", function(req)
  local repo, tag = req.params.path:match("^(.+)/tags/([^/]+)$")
  lookups:update(function(tx) tx:put("count", (tx:get("count") or 0) + 1) end)
  if repo and known[repo .. ":" .. tag] then return { name = tag } end
  return 404, { message = "object not found", errinfo = {} }
end)

service:get("/lookups", function() return { count = lookups:get("count") or 0 } end)
