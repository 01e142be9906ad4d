-- Cached files: metadata in kv (cache_id → {token_id, filename, expiration}), bytes in files under
-- <data_dir>/file_cache/<first two hex digits>/<cache_id>. An upload streams into a hidden temp
-- file and is renamed over the old one only when complete, then its metadata is written: a
-- client that disconnects never leaves a partial file visible and never loses the previous one.
local kv = require "kv"
local fs = require "fs"
local depot = require "depot"

local M = {}
M.__index = M

M.PLACEHOLDER_SECONDS = 7 * 24 * 3600
M.FILE_SECONDS = 30 * 24 * 3600

function M.new(lifetimes)
  return setmetatable({
    entries = kv.open("file_cache"),
    -- Expiration bumps on download need not pay an fsync: losing the last ~100 ms of them to a
    -- power cut only makes a file expire a little earlier.
    touches = kv.open("file_cache", { durable = false }),
    root = depot.data_dir .. "/file_cache",
    placeholder_seconds = lifetimes.placeholder or M.PLACEHOLDER_SECONDS,
    file_seconds = lifetimes.file or M.FILE_SECONDS,
  }, M)
end

function M:path(cache_id)
  return string.format("%s/%s/%s", self.root, cache_id:sub(1, 2), cache_id)
end

local function expiration_in(seconds) return tostring(math.floor(depot.now() + seconds)) end

-- The metadata of `cache_id`, created as a placeholder if there is none.
function M:ensure(cache_id, token_id)
  return self.entries:update(function(tx)
    local entry = tx:get(cache_id)
    if entry then return entry end
    entry = { token_id = token_id, filename = "placeholder", expiration = expiration_in(self.placeholder_seconds) }
    tx:put(cache_id, entry)
    return entry
  end)
end

-- The entry of `cache_id` if `token_id` owns it; fails with 404 or 403 otherwise.
function M:owned(cache_id, token_id)
  local entry = self.entries:get(cache_id)
  if not entry then depot.fail(404, "Cache ID not found") end
  if entry.token_id ~= token_id then depot.fail(403, "You do not have access to that cache") end
  return entry
end

-- Streams one multipart part into the cache; returns its size.
function M:store(cache_id, token_id, part, filename)
  local path = self:path(cache_id)
  assert(fs.mkdir(self.root .. "/" .. cache_id:sub(1, 2)))
  local writer = fs.writer(path)
  local size = 0
  while true do
    local chunk, err = part:read()
    if err then
      writer:abort()
      depot.fail(400, "upload interrupted: " .. err)
    end
    if not chunk then break end
    size = size + #chunk
    writer:write(chunk)
  end
  writer:commit()
  self.entries:update(function(tx)
    local entry = tx:get(cache_id)
    if not entry or entry.token_id ~= token_id then return end -- deleted meanwhile: keep it so
    entry.filename = filename
    entry.expiration = expiration_in(self.file_seconds)
    tx:put(cache_id, entry)
  end)
  return size
end

-- Records a download: files expire 30 days after their last upload or download.
function M:touch(cache_id, entry)
  entry.expiration = expiration_in(self.file_seconds)
  self.touches:put(cache_id, entry)
end

function M:remove(cache_id)
  fs.remove(self:path(cache_id))
  self.entries:delete(cache_id)
end

-- Removes every entry whose expiration passed (or that has none); returns total, removed.
function M:expire_all()
  local now, total, removed = depot.now(), 0, 0
  local from = nil
  repeat
    local batch = self.entries:iter({ from = from, limit = 1000 })
    for _, item in ipairs(batch) do
      total = total + 1
      local expiration = type(item.value) == "table" and tonumber(item.value.expiration)
      if not expiration or now > expiration then
        self:remove(item.key)
        removed = removed + 1
      end
    end
    if #batch > 0 then from = batch[#batch].key .. "\0" end
  until #batch < 1000
  return total, removed
end

return M
