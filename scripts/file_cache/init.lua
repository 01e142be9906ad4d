-- The file cache service, compatible with KBase's file caching server: token-scoped cache IDs,
-- multipart upload, download, delete, expiry. See docs/services/file-cache.md.
local service = ...
local depot = require "depot"
local cluster = require "cluster"
local settings = require("config").of(service)
local Auth = require "file_cache.auth"
local cache_id = require "file_cache.cache_id"
local expiry = require "file_cache.expiry"
local secure_filename = require("file_cache.secure_filename").secure_filename
local Store = require "file_cache.store"
local UsersAuth = require "file_cache.users_auth"
local api = require "file_cache.openapi"

-- A KBase auth service when one is configured; Depot's own users service otherwise.
local users = settings.has("KBASE_AUTH_URL") and Auth.new(settings.string("KBASE_AUTH_URL"))
  or UsersAuth.new(settings)

local storage_dir = settings.string("storage_dir", "file_cache")
if storage_dir:sub(1, 1) ~= "/" then storage_dir = depot.data_dir .. "/" .. storage_dir end
local store = Store.new({
  root = storage_dir,
  placeholder_seconds = settings.number("placeholder_lifetime", Store.PLACEHOLDER_SECONDS),
  file_seconds = settings.number("file_lifetime", Store.FILE_SECONDS),
  max_upload_bytes = settings.has("max_upload_bytes") and settings.integer("max_upload_bytes") or nil,
})
local expiry_interval = settings.number("expiry_interval", 3600)
-- 1..1000: a blob listing's page holds at most 1000 keys (S3's own limit).
local expiry_page_size = math.min(1000, math.max(1, settings.integer("expiry_page_size",
  expiry.PAGE_SIZE)))

-- The original's error shapes: {"status": "error", "error": ...}; nothing but the status for an
-- unknown path; nothing about internals for anything unexpected. Client errors the engine finds
-- (a malformed multipart body, 413) keep their status instead of the original's blanket 500.
service:on_error(function(status, message)
  if status == 404 and message == "not found" then return { status = "error" } end
  if status == 405 then return { status = "error", error = "Method not allowed" } end
  if status >= 500 then return 500, { status = "error", error = "Unexpected server error" } end
  return { status = "error", error = message }
end)

service:get("/", function()
  return { endpoints = { api_v1 = { path = "/v1", desc = "API Version 1", example = "GET /v1" } } }
end, api.root)

service:get("/v1", function()
  return { routes = {
    root = "GET /",
    generate_cache_id = "POST /cache_id",
    download_cache_file = "GET /cache/<cache_id>",
    upload_cache_file = "POST /cache/<cache_id>",
    delete_cache_file = "DELETE /cache/<cache_id>",
  } }
end, api.version_1)

-- The media type without parameters, lower-cased: "application/json; charset=utf-8" is JSON too.
local function media_type(value)
  return value and (value:match("^%s*([^;%s]+)") or ""):lower()
end

service:post("/v1/cache_id", function(req)
  local token_id = users:token_id(req)
  local content_type = req:header("Content-Type")
  if media_type(content_type) ~= "application/json" then
    depot.fail(400, string.format("Invalid Content-Type: '%s'. Must be: 'application/json'.",
      content_type or "None"))
  end
  local id, problem = cache_id.from_body(token_id, req:body())
  if not id then depot.fail(400, problem) end
  return { cache_id = id, status = "ok", metadata = Store.metadata(store:ensure(id, token_id)) }
end, api.create_cache_id)

-- The first part named "file" that is a file (werkzeug files a part without a filename under
-- the form fields, not the files).
local function file_part(req)
  if media_type(req:header("Content-Type")) ~= "multipart/form-data" then return nil end
  for part in req:parts() do
    if part.name == "file" and part.filename ~= nil then return part end
  end
end

service:post("/v1/cache/:cache_id", function(req)
  local token_id = users:token_id(req)
  local part = file_part(req)
  if not part then depot.fail(400, "File field missing") end
  if part.filename == "" then depot.fail(400, "Filename missing") end
  local id = req.params.cache_id
  store:owned(id, token_id)
  store:store(id, token_id, part, secure_filename(part.filename))
  return { status = "ok" }
end, api.upload)

-- The bytes (with sendfile, or relayed from S3); Content-Type from the stored name's extension,
-- Content-Disposition with that name, ETag, Last-Modified, Range and HEAD from the engine or S3.
service:get("/v1/cache/:cache_id", function(req, res)
  local token_id = users:token_id(req)
  local id = req.params.cache_id
  local entry = store:owned(id, token_id)
  if not Store.has_file(entry) then depot.fail(404, Store.NOT_FOUND) end
  store:bump(id, entry)
  if not store:serve(req, res, id, entry) then depot.fail(404, Store.NOT_FOUND) end
end, api.download)

service:delete("/v1/cache/:cache_id", function(req)
  local token_id = users:token_id(req)
  local id = req.params.cache_id
  store:owned(id, token_id)
  store:remove(id)
  return { status = "ok" }
end, api.delete)

-- Once per interval across all replicas sharing the kv store, not once per replica.
service:on_start(function()
  cluster.every(service.name .. ":expiry", expiry_interval, function()
    expiry.run(store, "periodic", expiry_page_size)
  end)
end)

-- depot admin expire-all: safe while the server runs on the same data dir (LMDB serializes the
-- writers, and each removal re-checks its entry in its own transaction). Prints what the
-- original's `admin expire_all` printed.
service:command("expire-all", function()
  print("Checking the expiration of all stored objects..")
  local total, removed = expiry.run(store, "admin", expiry_page_size)
  print(string.format("... Finished running. Total objects: %d. Removed %d objects", total, removed))
end)

-- Last: a service that failed to load must not have claimed its mounts' API pages.
require("openapi").serve(service, api.info)
