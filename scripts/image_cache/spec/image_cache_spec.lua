-- The image cache's main flow over real HTTP, against the Kentik API stand-in (tests/stubs/
-- kentik_api): a chart request, the image fetched once in the background, Kentik's errors passed
-- on, the request checks. Run with `depot test scripts/image_cache` (docs/lua-api.md, depot.spec).
local spec = require "depot.spec"
local json = require "json"

-- A chart query; `stub` tells the stand-in how to answer (tests/stubs/kentik_api/init.lua).
local function chart(stub)
  return { api_query = { imageType = "png", queries = { { query = { metric = "bytes" } } }, stub = stub }, ttl = 60 }
end

describe("image cache", function()
  local kentik, server

  lazy_setup(function()
    kentik = spec.upstream("kentik_api")
    server = spec.start({ services = {
      { name = "image_cache", mount = { "/" }, config = {
        KENTIK_API_URL = kentik.url, KT_AUTH_EMAIL = "test@example.com", KT_AUTH_TOKEN = "secret-token",
        KENTIK_API_RETRIES = 0, KENTIK_API_TIMEOUT = 5,
      } },
    } })
  end)

  lazy_teardown(function()
    server:stop()
    kentik:stop()
  end)

  it("fetches a chart once and serves it from the cache", function()
    local request = server:post("/requests", { json = chart({ name = "flow" }) })
    assert.equals(200, request.status)
    local id = request:json().id
    assert.is_string(id)
    for _ = 1, 2 do
      local image = server:get("/image/" .. id)
      assert.equals(200, image.status)
      assert.equals("image/png", image.headers["content-type"])
      assert.equals("png-image-bytes-flow", image.body)
    end
    assert.equals(id, server:post("/requests", { json = chart({ name = "flow" }) }):json().id)
    assert.equals(1, kentik:get("/calls/flow"):json().calls)
  end)

  it("passes Kentik's error on with its status", function()
    local id = server:post("/requests", { json = chart({ name = "refused", status = 403, message = "no access" }) }):json().id
    local image = server:get("/image/" .. id)
    assert.equals(403, image.status)
    assert.equals("Kentik API error", image:json().type)
  end)

  it("answers a request without api_query 400 and a malformed one 422", function()
    local missing = server:post("/requests", { json = { ttl = 5 } })
    assert.equals(400, missing.status)
    assert.equals("Incomplete request, missing 'api_query'", missing:json().msg)
    local malformed = server:post("/requests", { body = "{", headers = { ["Content-Type"] = "application/json" } })
    assert.equals(422, malformed.status)
  end)

  it("answers an unknown image 404", function()
    local res = server:get("/image/unknown")
    assert.equals(404, res.status)
    assert.equals("Image not found", res:json().msg)
  end)

  it("lists its entries", function()
    local res = server:get("/info")
    assert.equals(200, res.status)
    assert.is_not_nil(json.decode(res.body))
  end)
end)
