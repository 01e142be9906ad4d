-- The file cache service, compatible with KBase's caching service API: token-scoped cache IDs,
-- multipart upload, streamed download, delete, expiry. See docs/services/file-cache.md.
local depot = require "depot"
local jobs = require "jobs"
local log = require "log"
local settings = require("config").of(...)
local auth = require("file_cache.auth")
local cache_id = require("file_cache.cache_id")
local Store = require("file_cache.store")
local secure_filename = require("file_cache.secure_filename").secure_filename
local service = ...

local users = auth.new(settings.string("KBASE_AUTH_URL", "http://auth:5000"))
local store = Store.new({
  placeholder = settings.number("placeholder_lifetime", Store.PLACEHOLDER_SECONDS),
  file = settings.number("file_lifetime", Store.FILE_SECONDS),
})
local expiry_interval = settings.number("expiry_interval", 3600)

-- The original's error shapes: {"status": "error", "error": ...}, no error for unknown paths,
-- and nothing about internals for anything unexpected.
service:on_error(function(status, message)
  if status == 404 and message == "not found" then return { status = "error" } end
  if status == 405 then return { status = "error", error = "Method not allowed" } end
  if status >= 500 then return 500, { status = "error", error = "Unexpected server error" } end
  return { status = "error", error = message }
end)

service:get("/", function()
  return { endpoints = { api_v1 = { path = "/v1", desc = "API Version 1", example = "GET /v1" } } }
end)

service:get("/v1", function()
  return { routes = {
    root = "GET /",
    generate_cache_id = "POST /cache_id",
    download_cache_file = "GET /cache/<cache_id>",
    upload_cache_file = "POST /cache/<cache_id>",
    delete_cache_file = "DELETE /cache/<cache_id>",
  } }
end)

-- The media type, without parameters: "application/json; charset=utf-8" is JSON too.
local function media_type(value)
  return value and value:match("^%s*([^;%s]+)"):lower()
end

service:post("/v1/cache_id", function(req)
  local token_id = users:token_id(req)
  local content_type = req:header("Content-Type")
  if media_type(content_type) ~= "application/json" then
    depot.fail(400, string.format("Invalid Content-Type: '%s'. Must be: 'application/json'.", content_type or "None"))
  end
  local id, problem = cache_id.from_body(token_id, req:body())
  if not id then depot.fail(400, problem) end
  local entry = store:ensure(id, token_id)
  return { cache_id = id, status = "ok", metadata = {
    expiration = entry.expiration, filename = entry.filename, token_id = entry.token_id } }
end)

service:post("/v1/cache/:cache_id", function(req)
  local token_id = users:token_id(req)
  local id = req.params.cache_id
  for part in req:parts() do
    if part.name == "file" then
      if part.filename == nil or part.filename == "" then depot.fail(400, "Filename missing") end
      store:owned(id, token_id)
      local size = store:store(id, token_id, part, secure_filename(part.filename))
      log.info("cache file stored", { cache_id = id, bytes = size })
      return { status = "ok" }
    end
  end
  depot.fail(400, "File field missing")
end, { max_body_bytes = 1024 * 1024 })

service:get("/v1/cache/:cache_id", function(req, res)
  local token_id = users:token_id(req)
  local id = req.params.cache_id
  local entry = store:owned(id, token_id)
  if entry.filename == "" or entry.filename == "placeholder" then depot.fail(404, "Cache ID not found") end
  store:touch(id, entry)
  if not res:file(store:path(id), { download_name = entry.filename }) then depot.fail(404, "Cache ID not found") end
end)

service:delete("/v1/cache/:cache_id", function(req)
  local token_id = users:token_id(req)
  local id = req.params.cache_id
  store:owned(id, token_id)
  store:remove(id)
  return { status = "ok" }
end)

local function expire(what)
  local total, removed = store:expire_all()
  log.info("file cache expiry", { run = what, total = total, removed = removed })
  return total, removed
end

service:on_start(function()
  jobs.every(expiry_interval, function(premature)
    if not premature then expire("periodic") end
  end)
end)

-- depot admin expire-all: safe while the server runs (LMDB serializes the writers).
service:command("expire-all", function()
  local total, removed = expire("admin")
  print(string.format("Finished running. Total objects: %d. Removed %d objects", total, removed))
end)
