-- The file cache's main flow over real HTTP, against the KBase auth stand-in (tests/stubs/
-- kbase_auth): a cache id for a token, upload, download, delete, and the token checks.
-- Run with `depot test scripts/file_cache` (docs/lua-api.md, depot.spec).
local spec = require "depot.spec"

local TOKEN = { Authorization = "non_admin_token" }  -- a user of the stand-in's fixtures
local OTHER = { Authorization = "non_admin_token2" }

describe("file cache", function()
  local auth, server

  lazy_setup(function()
    auth = spec.upstream("kbase_auth")
    server = spec.start({ services = {
      { name = "file_cache", mount = { "/" }, config = { KBASE_AUTH_URL = auth.url, expiry_interval = 3600 } },
    } })
  end)

  lazy_teardown(function()
    server:stop()
    auth:stop()
  end)

  local function new_cache_id(headers, body)
    local res = server:post("/v1/cache_id", { headers = headers, json = body })
    assert.equals(200, res.status)
    local answer = res:json()
    assert.equals("ok", answer.status)
    return answer.cache_id
  end

  it("stores, serves and deletes a file under a cache id", function()
    local id = new_cache_id(TOKEN, { demo = "flow", n = 1 })
    local upload = server:post("/v1/cache/" .. id, { headers = TOKEN, multipart = {
      { name = "file", filename = "notes.txt", content = "cached bytes\n", content_type = "text/plain" },
    } })
    assert.equals(200, upload.status)
    assert.same({ status = "ok" }, upload:json())

    local download = server:get("/v1/cache/" .. id, { headers = TOKEN })
    assert.equals(200, download.status)
    assert.equals("cached bytes\n", download.body)
    assert.matches("notes.txt", download.headers["content-disposition"], 1, true)

    assert.equals(200, server:delete("/v1/cache/" .. id, { headers = TOKEN }).status)
    assert.equals(404, server:get("/v1/cache/" .. id, { headers = TOKEN }).status)
  end)

  it("gives the same body the same cache id, and another token another one", function()
    local body = { same = "identifiers" }
    assert.equals(new_cache_id(TOKEN, body), new_cache_id(TOKEN, body))
    assert.are_not.equals(new_cache_id(TOKEN, body), new_cache_id(OTHER, body))
  end)

  it("refuses another token's cache id", function()
    local id = new_cache_id(TOKEN, { owned = true })
    local res = server:get("/v1/cache/" .. id, { headers = OTHER })
    assert.equals(403, res.status)
    assert.equals("error", res:json().status)
  end)

  it("answers a request without a token in its error shape", function()
    local res = server:post("/v1/cache_id", { json = { no = "token" } })
    assert.equals(400, res.status)
    local answer = res:json()
    assert.equals("error", answer.status)
    assert.is_string(answer.error)
  end)
end)
