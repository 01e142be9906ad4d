-- Lua module `blob`: the services' file bytes, on the local filesystem (the default) or on S3
-- (`"storage": {"blobs": "s3://bucket/prefix"}` or DEPOT_BLOB_URL), behind one API so that a route
-- script is the same in both modes. The backends are blob_fs.lua and blob_s3.lua; the settings
-- come from blob_driver (C++). The manual is docs/lua-api.md (blob).
--
--   local store = blob.open("file_cache", { root = "/data/file_cache" })
--   local w = store:writer("ab/abcdef", { hash = "xxh128" }); w:write(chunk); w:commit()
--   store:serve(req, res, "ab/abcdef", { download_name = "report.pdf" })
--
-- Where: inside a task (everything waits, on the pool or on the network); on files also in
-- `depot admin`, where it blocks.
local driver = require "blob_driver"

local M = {}

local settings = driver.settings
M.backend = settings.url ~= "" and "s3" or "fs"

local function check_key(function_name, key)
  if type(key) ~= "string" or key == "" then
    error(function_name .. ": key must be a non-empty string", 3)
  end
  if key:sub(1, 1) == "/" or key:find("//", 1, true) or key:find("%z")
     or ("/" .. key .. "/"):find("/%.%.?/") then
    error(function_name .. ": key must be a relative path without empty, . or .. segments", 3)
  end
end

local Store = {}
Store.__index = Store

-- blob.open(name [, {root = directory}]) → store. `name` is a key prefix of its own on S3
-- (s3://bucket/prefix/<name>/…); on files the store is the directory `root` (relative: under the
-- data dir; default <data_dir>/blobs/<name>).
function M.open(name, options)
  if type(name) ~= "string" or not name:find("^[%w_%-]+$") then
    error("blob.open: name must be letters, digits, '_' or '-'", 2)
  end
  if options ~= nil and type(options) ~= "table" then error("blob.open: options must be a table", 2) end
  local root = options and options.root or ("blobs/" .. name)
  if type(root) ~= "string" or root == "" then error("blob.open: options.root must be a path", 2) end
  if root:sub(1, 1) ~= "/" then root = driver.data_dir .. "/" .. root end
  local backend = M.backend == "s3" and require("blob_s3").open(settings, name)
    or require("blob_fs").open(root)
  return setmetatable({ backend = backend, name = name }, Store)
end

-- store:writer(key [, {hash = "xxh128"}]) → writer | nil, err
function Store:writer(key, options)
  check_key("store:writer", key)
  if options ~= nil and type(options) ~= "table" then error("store:writer: options must be a table", 2) end
  local hash = options and options.hash
  if hash ~= nil and hash ~= "xxh128" then error('store:writer: options.hash must be "xxh128"', 2) end
  return self.backend:writer(key, { hash = hash })
end

-- store:put(key, data) → bytes | nil, err
function Store:put(key, data)
  check_key("store:put", key)
  if type(data) ~= "string" then error("store:put: data must be a string", 2) end
  return self.backend:put(key, data)
end

-- store:read(key) → data | nil, "not found" | nil, err
function Store:read(key)
  check_key("store:read", key)
  return self.backend:read(key)
end

-- store:delete(key) → true | nil, err (a missing object is no error)
function Store:delete(key)
  check_key("store:delete", key)
  return self.backend:delete(key)
end

-- store:stat(key) → {size =, mtime =} | nil (none) | nil, err
function Store:stat(key)
  check_key("store:stat", key)
  return self.backend:stat(key)
end

-- store:exists(key) → boolean | nil, err
function Store:exists(key)
  local info, err = self:stat(key)
  if err then return nil, err end
  return info ~= nil
end

-- store:list([prefix [, {after = key | cursor = c, limit = 1000}]]) → { {key =, size =, mtime =},
-- ... }, next_cursor | nil, err
function Store:list(prefix, options)
  prefix = prefix or ""
  if type(prefix) ~= "string" then error("store:list: prefix must be a string", 2) end
  if options ~= nil and type(options) ~= "table" then error("store:list: options must be a table", 2) end
  local limit = options and options.limit or 1000
  if type(limit) ~= "number" or limit < 1 or limit > 1000 or limit ~= math.floor(limit) then
    error("store:list: options.limit must be an integer 1..1000", 2)
  end
  local after = options and options.after
  if after ~= nil and type(after) ~= "string" then error("store:list: options.after must be a string", 2) end
  local cursor = options and options.cursor
  if cursor ~= nil and type(cursor) ~= "string" then error("store:list: options.cursor must be a string", 2) end
  if after and cursor then error("store:list: options.after and options.cursor exclude each other", 2) end
  return self.backend:list(prefix, after, limit, cursor)
end

-- store:abort_stale_uploads(before) → count | nil, err
function Store:abort_stale_uploads(before)
  if type(before) ~= "number" then error("store:abort_stale_uploads: before must be a number", 2) end
  return self.backend:abort_stale_uploads(before)
end

-- store:serve(req, res, key [, {download_name =, content_type =, headers =}]) → true | nil, err
-- (nil, "not found": nothing was sent)
function Store:serve(req, res, key, options)
  check_key("store:serve", key)
  options = options or {}
  local content_type = options.content_type or driver.mime_type(options.download_name or key)
  return self.backend:serve(req, res, key, options, content_type)
end

return M
