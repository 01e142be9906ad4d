-- The hello service over real HTTP: the greeting, the health check and its API document.
-- Run with `depot test scripts/hello` (docs/lua-api.md, depot.spec).
local spec = require "depot.spec"

describe("hello", function()
  local server

  lazy_setup(function()
    server = spec.start({ services = { { name = "hello", mount = { "/" } } } })
  end)

  lazy_teardown(function()
    server:stop()
  end)

  it("greets", function()
    local res = server:get("/hello")
    assert.equals(200, res.status)
    assert.equals("hello\n", res.body)
  end)

  it("says it is up", function()
    local res = server:get("/health")
    assert.equals(200, res.status)
    assert.same({ status = "ok" }, res:json())
  end)

  it("documents both routes in its OpenAPI document", function()
    local document = server:get("/openapi.json"):json()
    assert.equals("Hello", document.info.title)
    assert.is_table(document.paths["/hello"].get)
    assert.is_table(document.paths["/health"].get)
  end)

  it("answers an unknown route 404 and another method 405", function()
    assert.equals(404, server:get("/nothing-here").status)
    local res = server:post("/hello", { body = "" })
    assert.equals(405, res.status)
    assert.equals("GET, HEAD", res.headers["allow"])
  end)
end)
