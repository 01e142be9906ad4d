-- The staging service's main flow over real HTTP: a file created in the source storage, staged
-- by local copy and symlink into a user area, downloaded directly, copied into a Jupyter server
-- (the JupyterHub stand-in, tests/stubs/jupyterhub), and the records of it all.
-- Run with `depot test scripts/staging` (docs/lua-api.md, depot.spec).
local spec = require "depot.spec"

local function read(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local content = file:read("*a")
  file:close()
  return content
end

describe("staging", function()
  local hub, server, source, target

  lazy_setup(function()
    hub = spec.upstream("jupyterhub")
    source, target = spec.temp_dir(), spec.temp_dir()
    server = spec.start({ services = {
      { name = "staging", mount = { "/staging" }, config = {
        SOURCE_STORAGE_PATH = source, TARGET_STORAGE_PATH = target,
        ALLOWED_METHODS = { "local_copy", "local_symlink", "direct_download", "jupyter_copy" },
        JUPYTERHUB_URL = hub.url, JUPYTERHUB_API_TOKEN = "admin-token",
      } },
    } })
    local created = server:post("/staging/create-file/", { json = { filename = "a.txt", content = "staged bytes" } })
    assert.equals(200, created.status)
  end)

  lazy_teardown(function()
    server:stop()
    hub:stop()
  end)

  local function stage(method, relative_path)
    return server:post("/staging/stage-data/?method=" .. method .. "&username=alice",
      { json = { data = { local_path_on_storage = "a.txt", relative_path = relative_path } } })
  end

  it("creates the file in the source storage", function()
    assert.equals("staged bytes", read(source .. "/a.txt"))
  end)

  it("copies a file into the user's area", function()
    local res = stage("local_copy", "copies/a.txt")
    assert.equals(200, res.status)
    assert.equals("success", res:json().status)
    assert.equals("staged bytes", read(target .. "/alice/copies/a.txt"))
  end)

  it("links a file into the user's area", function()
    assert.equals(200, stage("local_symlink", "links/a.txt").status)
    assert.equals("staged bytes", read(target .. "/alice/links/a.txt"))
  end)

  it("sends a file for direct download", function()
    local res = stage("direct_download", "")
    assert.equals(200, res.status)
    assert.equals("staged bytes", res.body)
    assert.matches("a.txt", res.headers["content-disposition"], 1, true)
  end)

  it("copies a file into the user's Jupyter server", function()
    assert.equals(200, stage("jupyter_copy", "from-depot/a.txt").status)
    local file = hub:get("/user/alice/api/contents/from-depot/a.txt", { headers = { Authorization = "token user-token-alice" } })
    assert.equals(200, file.status)
    assert.equals("staged bytes", file:json().content)
  end)

  it("refuses a path out of the source storage", function()
    local res = server:post("/staging/create-file/", { json = { filename = "../escape.txt", content = "x" } })
    assert.equals(400, res.status)
    assert.matches("Invalid file name", res:json().detail, 1, true)
    assert.is_nil(read(source .. "/../escape.txt"))
  end)

  it("records each staging", function()
    assert.equals(200, stage("local_copy", "recorded/a.txt").status)
    local records = server:get("/staging/stage-data/records?username=alice&status=success"):json().records
    assert.is_true(#records >= 1)
  end)
end)
