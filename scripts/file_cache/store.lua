-- The cached files: metadata in kv (cache_id → {token_id, filename, expiration, size, xxh128}),
-- bytes in the blob store "file_cache" under the key <first two hex digits>/<cache_id>: on files
-- <root>/<first two hex digits>/<cache_id>, on S3 s3://bucket/prefix/file_cache/<that key>. The digest only detects a file
-- corrupted on disk (no client sees it, nothing is addressed by it), so it is the fast XXH3-128
-- rather than BLAKE2b, which cost 1.4 ms of CPU per MiB uploaded.
--
-- Order of writes, so that a crash or a vanished client never shows a partial file and never
-- loses the previous version: an upload streams into a blob writer (a hidden temporary file renamed
-- over the old one, or an S3 multipart upload completed) when complete, then writes the metadata;
-- removal deletes the metadata, then the bytes. What a crash can leave behind (a temporary file, a
-- file without metadata) is invisible to clients and removed by expiry.sweep_orphans.
local blob = require "blob"
local depot = require "depot"
local kv = require "kv"
local log = require "log"

local M = {}
M.__index = M

M.PLACEHOLDER_SECONDS = 7 * 24 * 3600
M.FILE_SECONDS = 30 * 24 * 3600
M.NOT_FOUND = "Cache ID not found"

-- options: root (absolute directory of the files), placeholder_seconds, file_seconds,
-- max_upload_bytes (nil: no limit, as the original).
function M.new(options)
  return setmetatable({
    entries = kv.open("file_cache"),
    -- Expiration bumps on download need not wait for an fsync: losing the last ~100 ms of them
    -- to a power cut only makes a file expire a little earlier.
    bumps = kv.open("file_cache", { durable = false }),
    blobs = blob.open("file_cache", { root = options.root }),
    placeholder_seconds = options.placeholder_seconds or M.PLACEHOLDER_SECONDS,
    file_seconds = options.file_seconds or M.FILE_SECONDS,
    max_upload_bytes = options.max_upload_bytes,
  }, M)
end

-- Cache ids are 128 lowercase hex digits; anything else cannot exist.
function M.valid_id(cache_id)
  return #cache_id == 128 and cache_id:find("^[0-9a-f]+$") ~= nil
end

-- The blob key of a cache id's bytes.
function M.key(cache_id) return cache_id:sub(1, 2) .. "/" .. cache_id end

-- The cache id whose bytes the blob key `key` holds, and whether it is the temporary file of one
-- of its uploads (a writer's ".<cache id>.tmp.<random>" next to its target, on files); nil for a
-- key outside that layout.
function M.owner_of(key)
  local directory, name = key:match("^(%x%x)/([^/]+)$")
  if not directory then return nil end
  local uploading = name:match("^%.(%x+)%.tmp%.")
  local cache_id = uploading or name
  if not M.valid_id(cache_id) or cache_id:sub(1, 2) ~= directory then return nil end
  return cache_id, uploading ~= nil
end

local function expiration_in(seconds) return tostring(math.floor(depot.now() + seconds)) end

-- What clients see of an entry.
function M.metadata(entry)
  return { expiration = entry.expiration, filename = entry.filename, token_id = entry.token_id }
end

-- Whether an entry holds an uploaded file (a placeholder has no size).
function M.has_file(entry) return entry.size ~= nil end

-- The entry of `cache_id`, created as a placeholder (no file, 7 days) if there is none.
function M:ensure(cache_id, token_id)
  return self.entries:update(function(tx)
    local entry = tx:get(cache_id)
    if entry then return entry end
    entry = { token_id = token_id, filename = "placeholder",
              expiration = expiration_in(self.placeholder_seconds) }
    tx:put(cache_id, entry)
    return entry
  end)
end

-- The entry of `cache_id` if `token_id` owns it; fails with 404 or 403 otherwise.
function M:owned(cache_id, token_id)
  local entry = M.valid_id(cache_id) and self.entries:get(cache_id)
  if not entry then depot.fail(404, M.NOT_FOUND) end
  if entry.token_id ~= token_id then depot.fail(403, "You do not have access to that cache") end
  return entry
end

-- A failure of the disk, not of the client: logged, and answered as the original answered it.
local function failed(why, fields)
  log.error("file cache upload failed: " .. why, fields)
  depot.fail(500, "Unexpected server error")
end

-- Streams a multipart part into the file of `cache_id` (owned by `token_id`), then records it
-- under `filename` for 30 days. part:pipe moves the bytes in C++ into an fs writer (the Lua loop
-- of writer:write for an S3 one). A client that goes away fails the request with 400, a part over
-- max_upload_bytes with 413; both leave the previous file in place.
function M:store(cache_id, token_id, part, filename)
  local writer = assert(self.blobs:writer(M.key(cache_id), { hash = "xxh128" }))
  local piped, err, origin = part:pipe(writer, { limit = self.max_upload_bytes })
  if not piped then
    writer:abort()
    if err == "too large" and origin == "request" then
      depot.fail(413, "File too large: the limit is " .. self.max_upload_bytes .. " bytes")
    end
    if origin == "request" then depot.fail(400, "upload interrupted: " .. err) end
    failed("write", { cache_id = cache_id, error = err })
  end
  local size, digest = writer:commit()
  if not size then failed("commit", { cache_id = cache_id, error = digest }) end
  local recorded = self.entries:update(function(tx)
    local entry = tx:get(cache_id)
    if not entry or entry.token_id ~= token_id then return false end
    entry.filename, entry.size, entry.xxh128 = filename, size, digest
    entry.blake2b = nil -- the digest of an earlier version's upload
    entry.expiration = expiration_in(self.file_seconds)
    tx:put(cache_id, entry)
    return true
  end)
  if not recorded then
    -- Deleted or expired while the bytes arrived: the file it left behind must go too.
    self.blobs:delete(M.key(cache_id))
    depot.fail(404, M.NOT_FOUND)
  end
  return size
end

-- Records a download of `entry` (as read just before): files expire 30 days after their last
-- upload or download. At most one write per entry and second, none while `entry` is current; an
-- entry removed meanwhile stays removed.
function M:bump(cache_id, entry)
  local expiration = expiration_in(self.file_seconds)
  local function current(seen) return (tonumber(seen.expiration) or 0) >= tonumber(expiration) end
  if current(entry) then return end
  self.bumps:update(function(tx)
    local stored = tx:get(cache_id)
    if not stored or not M.has_file(stored) or current(stored) then return end
    stored.expiration = expiration
    tx:put(cache_id, stored)
  end)
end

function M:remove(cache_id)
  self.entries:delete(cache_id)
  self.blobs:delete(M.key(cache_id))
end

-- Answers a download of the bytes of `entry` (Range, ETag, conditional requests, HEAD); false when
-- they are gone (nothing was sent).
function M:serve(req, res, cache_id, entry)
  return self.blobs:serve(req, res, M.key(cache_id), { download_name = entry.filename }) == true
end

-- Removes `cache_id` if it is still expired at `now` (checked again in the transaction, so an
-- upload that just renewed it wins); returns whether it did.
function M:remove_if_expired(cache_id, now)
  local removed = self.entries:update(function(tx)
    local entry = tx:get(cache_id)
    if entry == nil or not M.expired(entry, now) then return false end
    tx:delete(cache_id)
    return true
  end)
  if removed then self.blobs:delete(M.key(cache_id)) end
  return removed
end

-- Expired at `now`: past its expiration, or without a readable one (as the original judged).
function M.expired(entry, now)
  local expiration = type(entry) == "table" and tonumber(entry.expiration)
  return not expiration or now > expiration
end

-- One page of entries in key order, starting after `after` (nil: the first page).
function M:page(after, limit)
  return self.entries:iter({ from = after and after .. "\0", limit = limit })
end

function M:exists(cache_id) return self.entries:exists(cache_id) end

function M:count() return self.entries:count() end

return M
