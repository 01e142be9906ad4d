-- The image cache's bytes, one blob per fetched image, kept where it is cheapest: an image up to
-- `inline_limit` bytes is a value in kv ("image_cache_bytes" database), a larger one an object of
-- the blob store "image_cache" named by its id (a file under the cache directory, or an S3 object
-- when the server's blobs are on S3; "file" in the entry either way). The entry records where
-- (its `stored` field; an entry without one, written by an earlier version, is a file).
--
-- Why inline: a file per small image cost more than the rest of its fetch together (an ext4
-- inode allocated and freed per image); a kv value is a few pages of a commit that happens anyway.
-- Write order: a file is written before the kv transaction that names it (a file cannot be
-- written inside one); inline bytes are written in that very transaction (put_inline), and
-- deleted in the one that deletes their entry (remove_inline), so entry and bytes commit together.
local blob = require "blob"
local kv = require "kv"

local M = {}
M.__index = M

M.INLINE_LIMIT = 64 * 1024
local INLINE_DATABASE = "image_cache_bytes"

-- options: inline_limit (bytes; 0 keeps every image in a file).
function M.new(directory, options)
  return setmetatable({
    blobs = blob.open("image_cache", { root = directory }),
    inline = kv.open(INLINE_DATABASE, { durable = false }),
    inline_limit = (options and options.inline_limit) or M.INLINE_LIMIT,
  }, M)
end

-- Writes image `id` as a file when it is too large to be inline; returns "file" then, else nil
-- (put_inline it in the entry's transaction).
function M:put_file(id, bytes)
  if #bytes <= self.inline_limit then return nil end
  assert(self.blobs:put(id, bytes))
  return "file"
end

-- Writes image `id` inline through kv transaction `tx`; returns "kv".
function M:put_inline(tx, id, bytes)
  tx:db(INLINE_DATABASE):put(id, bytes)
  return "kv"
end

-- Sends image `id` stored at `stored` (its entry's field) as the answer to `req`.
function M:send(req, res, id, stored, content_type)
  if stored == "kv" then
    local bytes = self.inline:get(id)
    if not bytes then return nil, "not found" end
    res:send(200, bytes, { ["Content-Type"] = content_type })
    return true
  end
  return self.blobs:serve(req, res, id, { content_type = content_type })
end

-- Deletes the inline images of `items` (a list of {id, stored}) through kv transaction `tx`;
-- returns the ids of the others, for remove_files once `tx` committed.
function M:remove_inline(tx, items)
  local files, inline = {}, tx:db(INLINE_DATABASE)
  for _, item in ipairs(items) do
    if item.stored == "kv" then inline:delete(item.id) else files[#files + 1] = item.id end
  end
  return files
end

-- Deletes the image files of `ids`.
function M:remove_files(ids)
  for _, id in ipairs(ids) do self.blobs:delete(id) end
end

return M
