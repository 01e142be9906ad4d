-- The image cache's bytes, one blob per fetched image, kept where it is cheapest: an image up to
-- `inline_limit` bytes is a value in kv ("image_cache_bytes" database), a larger one an object of
-- the blob store "image_cache" named by its id (a file under the cache directory, or an S3 object
-- when the server's blobs are on S3; "file" in the entry either way). The entry records where (`put`'s answer, its `stored`
-- field; an entry without one, written by an earlier version, is a file).
--
-- Why inline: a file per small image cost more than the rest of its fetch together (an ext4
-- inode allocated and freed per image); a kv value is a few pages of a commit that happens anyway.
-- Durability: `put` writes inline bytes with a batched kv handle, so they reach the disk with the
-- entry's own durable settle that follows (one fsync of the whole environment covers both).
local blob = require "blob"
local kv = require "kv"

local M = {}
M.__index = M

M.INLINE_LIMIT = 64 * 1024

-- options: inline_limit (bytes; 0 keeps every image in a file).
function M.new(directory, options)
  return setmetatable({
    blobs = blob.open("image_cache", { root = directory }),
    inline = kv.open("image_cache_bytes", { durable = false }),
    inline_limit = (options and options.inline_limit) or M.INLINE_LIMIT,
  }, M)
end

-- Stores the bytes of image `id`; returns where ("kv" or "file"), for the entry to keep.
function M:put(id, bytes)
  if #bytes <= self.inline_limit then
    self.inline:put(id, bytes)
    return "kv"
  end
  assert(self.blobs:put(id, bytes))
  return "file"
end

-- Sends image `id` stored at `stored` (put's answer) as the answer to `req`.
function M:send(req, res, id, stored, content_type)
  if stored == "kv" then
    local bytes = self.inline:get(id)
    if not bytes then return nil, "not found" end
    res:send(200, bytes, { ["Content-Type"] = content_type })
    return true
  end
  return self.blobs:serve(req, res, id, { content_type = content_type })
end

-- Removes the images of `items` (a list of {id, stored}): the inline ones in one kv update.
function M:remove(items)
  local files = {}
  self.inline:update(function(tx)
    for _, item in ipairs(items) do
      if item.stored == "kv" then tx:delete(item.id) else files[#files + 1] = item.id end
    end
  end)
  for _, id in ipairs(files) do self.blobs:delete(id) end
end

return M
