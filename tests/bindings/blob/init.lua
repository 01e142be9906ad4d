-- The blob module over HTTP, for tests/bindings/blob_test.cpp: each route is one store operation
-- on the store "tests", so that the test drives both backends through the same script.
local blob = require "blob"
local depot = require "depot"
local json = require "json"
local service = ...

local store = blob.open("tests")

local function check(ok, err)
  if ok == nil then depot.fail(err == "not found" and 404 or 500, err) end
  return ok
end

-- A streamed upload of the request body; answers its size and XXH3-128.
service:put("/objects/*key", function(req)
  local writer = check(store:writer(req.params.key, { hash = "xxh128" }))
  while true do
    local chunk, err = req:read()
    if err then
      writer:abort()
      depot.fail(400, err)
    end
    if not chunk then break end
    check(writer:write(chunk))
  end
  local size, digest = writer:commit()
  check(size, digest)
  return { size = size, xxh128 = digest }
end)

service:get("/objects/*key", function(req, res)
  check(store:serve(req, res, req.params.key, { download_name = req.query.name }))
end)

service:delete("/objects/*key", function(req)
  check(store:delete(req.params.key))
  return { deleted = true }
end)

service:post("/small/*key", function(req) return { size = check(store:put(req.params.key, req:body())) } end)

service:get("/small/*key", function(req) return check(store:read(req.params.key)) end)

service:get("/stat/*key", function(req)
  local info, err = store:stat(req.params.key)
  if err then depot.fail(500, err) end
  return { exists = check(store:exists(req.params.key)), size = info and info.size,
           fresh = info ~= nil and math.abs(info.mtime - depot.now()) < 600 }
end)

service:get("/list", function(req)
  local keys = setmetatable({}, json.array_mt)
  for _, item in ipairs(check(store:list(req.query.prefix, { after = req.query.after,
                                                            limit = tonumber(req.query.limit) }))) do
    keys[#keys + 1] = item.key
  end
  return { keys = keys, n = #keys }
end)
