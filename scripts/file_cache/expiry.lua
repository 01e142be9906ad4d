-- Expiry of cached files, run by the periodic job and by `depot admin expire-all` alike: every
-- entry past its expiration (placeholders 7 days after creation, files 30 days after their last
-- upload or download) is removed, then files that lost their metadata (a crash between the two
-- writes of an upload or a removal) and stale temporary files of interrupted uploads (on S3 an
-- interrupted upload is an incomplete multipart upload: invisible, and left to abort_stale_uploads).
local depot = require "depot"
local log = require "log"
local Store = require "file_cache.store"

local M = {}

local PAGE = 1000
-- Older than this, a temporary file is no upload in progress (it would still be growing) and a
-- file without metadata is no upload about to record it.
M.ORPHAN_GRACE_SECONDS = 3600

-- Removes the expired entries; returns how many entries there were and how many it removed.
-- (`depot admin expire-all` shows its progress; the periodic job's depot.progress does nothing.)
function M.expire_entries(store, now)
  local total, removed, after = 0, 0, nil
  local expected = store:count()
  repeat
    local page = store:page(after, PAGE)
    for _, item in ipairs(page) do
      total = total + 1
      if Store.expired(item.value, now) and store:remove_if_expired(item.key, now) then
        removed = removed + 1
      end
    end
    -- Entries added meanwhile can take the count past what was there at the start.
    depot.progress("expiry: entries checked", total, math.max(total, expected))
    after = page[#page] and page[#page].key
  until #page < PAGE
  -- Fewer than counted (removed meanwhile): the line still ends at 100%.
  if total < expected then depot.progress("expiry: entries checked", total, total) end
  return total, removed
end

local PREFIXES = {}
for byte = 0, 255 do PREFIXES[#PREFIXES + 1] = string.format("%02x", byte) end

local function is_orphan(store, key, now)
  local name = key:match("[^/]+$")
  local cache_id = name:match("^%.(%x+)%.tmp%.") or name
  if cache_id == name and (not Store.valid_id(name) or store:exists(name)) then return false end
  local info = store.blobs:stat(key)
  return info ~= nil and info.mtime < now - M.ORPHAN_GRACE_SECONDS
end

-- Removes the bytes under the store's prefixes (two hex digits: where every cache id's bytes and
-- its uploads' temporary files are) that no entry owns; returns how many.
function M.sweep_orphans(store, now)
  local removed = 0
  for done, prefix in ipairs(PREFIXES) do
    local after
    repeat
      local page = store.blobs:list(Store.prefix_key(prefix), { after = after, limit = PAGE }) or {}
      for _, item in ipairs(page) do
        if is_orphan(store, item.key, now) and store.blobs:delete(item.key) then
          removed = removed + 1
        end
      end
      after = page[#page] and page[#page].key
    until #page < PAGE
    depot.progress("expiry: file directories swept", done, #PREFIXES)
  end
  return removed
end

-- Both, logged; returns total and removed entries (what the admin command prints).
function M.run(store, why)
  local now = depot.now()
  local total, removed = M.expire_entries(store, now)
  local orphans = M.sweep_orphans(store, now)
  local aborted, err = store.blobs:abort_stale_uploads(now - M.ORPHAN_GRACE_SECONDS)
  if not aborted then log.warn("file cache expiry: stale uploads not aborted", { error = err }) end
  log.info("file cache expiry", { run = why, total = total, removed = removed, orphan_files = orphans,
                                  stale_uploads = aborted })
  return total, removed
end

return M
