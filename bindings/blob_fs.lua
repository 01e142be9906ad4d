-- The filesystem backend of the `blob` module (bindings/blob.lua), the default: a store is a
-- directory, a key a relative path under it ("ab/abcdef…" is <root>/ab/abcdef…). Writers are
-- fs.writer (a hidden temporary file renamed into place on commit), downloads res:file (sendfile,
-- Range, ETag, conditional requests). Every operation is an `fs` call: it waits on the thread pool,
-- never on the reactor.
local fs = require "fs"

local M = {}
M.__index = M

-- The store's directory exists from its opening on (mkdir -p), as services that wrote files there
-- themselves expected.
function M.open(root)
  assert(fs.mkdir(root))
  return setmetatable({ root = root }, M)
end

function M:path(key) return self.root .. "/" .. key end

local function parent(path) return path:match("^(.*)/[^/]*$") end

function M:writer(key, opts)
  local path = self:path(key)
  local ok, err = fs.mkdir(parent(path))
  if not ok then return nil, err end
  return fs.writer(path, { hash = opts and opts.hash })
end

function M:put(key, data)
  local path = self:path(key)
  local ok, err = fs.mkdir(parent(path))
  if not ok then return nil, err end
  ok, err = fs.write(path, data)
  if not ok then return nil, err end
  return #data
end

function M:read(key)
  local data, err = fs.read(self:path(key))
  if data then return data end
  if not fs.exists(self:path(key)) then return nil, "not found" end
  return nil, err
end

function M:delete(key)
  local removed, err = fs.remove(self:path(key))
  if removed == nil then return nil, err end
  return true
end

function M:stat(key)
  local info, err = fs.stat(self:path(key))
  if not info then
    if fs.exists(self:path(key)) == false then return nil end
    return nil, err
  end
  if info.type ~= "file" then return nil end
  return { size = info.size, mtime = info.mtime }
end

-- Keys compare segment by segment ("a/x" before "a.b"), the order of a sorted directory walk.
local function segments(key)
  local list = {}
  for segment in key:gmatch("[^/]+") do list[#list + 1] = segment end
  return list
end

-- Whether the subtree `prefix_segments` (a directory) holds keys after `after_segments`.
local function may_follow(prefix_segments, after_segments)
  for i, segment in ipairs(prefix_segments) do
    local other = after_segments[i]
    if other == nil or segment > other then return true end
    if segment < other then return false end
  end
  return true
end

-- One page of the keys starting with `prefix` (each with its size and mtime, from the stat the walk
-- makes anyway), after `after` (nil: from the first), at most `limit`; and the cursor of the next
-- page (the last key of a full page: the walk goes on after it), or nil. A directory that cannot
-- be read fails the page (nil, err): a listing with a hole in it would look like a store without
-- those keys.
function M:list(prefix, after, limit, cursor)
  after = cursor or after
  local entries = {}
  local after_segments = after and segments(after)
  local function walk(directory_key)
    local names, err = fs.list(directory_key == "" and self.root or self:path(directory_key))
    if not names then return nil, err end
    for _, name in ipairs(names) do
      if #entries >= limit then return true end
      local key = directory_key == "" and name or directory_key .. "/" .. name
      local key_segments = segments(key)
      local comparable = key:sub(1, #prefix) == prefix or prefix:sub(1, #key + 1) == key .. "/"
      if comparable and (not after_segments or may_follow(key_segments, after_segments)) then
        local info = fs.stat(self:path(key))
        if info and info.type == "directory" then
          local walked, problem = walk(key)
          if not walked then return nil, problem end
        elseif info and info.type == "file" and key:sub(1, #prefix) == prefix and key ~= after then
          entries[#entries + 1] = { key = key, size = info.size, mtime = info.mtime }
        end
      end
    end
    return true
  end
  local walked, err = walk("")
  if not walked then return nil, err end
  return entries, #entries == limit and entries[#entries].key or nil
end

-- Nothing to do on files: a writer's temporary file is removed when the writer is collected or at
-- the next start (fs.writer), and the services' sweeps remove stale ones.
function M:abort_stale_uploads() return 0 end

function M:serve(_, res, key, opts)
  return res:file(self:path(key), opts)
end

return M
