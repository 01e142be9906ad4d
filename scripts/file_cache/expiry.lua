-- Expiry of cached files, run by the periodic job and by `depot admin expire-all` alike: every
-- entry past its expiration (placeholders 7 days after creation, files 30 days after their last
-- upload or download) is removed, then files that lost their metadata (a crash between the two
-- writes of an upload or a removal) and stale temporary files of interrupted uploads (on S3 an
-- interrupted upload is an incomplete multipart upload: invisible, and left to abort_stale_uploads).
local depot = require "depot"
local log = require "log"
local Store = require "file_cache.store"

local M = {}

-- Entries and stored files handled per step, between which the run lets the worker serve others
-- (the `expiry_page_size` setting; on S3 one ListObjectsV2 request lists one page).
M.PAGE_SIZE = 1000
-- Older than this, a temporary file is no upload in progress (it would still be growing) and a
-- file without metadata is no upload about to record it.
M.ORPHAN_GRACE_SECONDS = 3600

-- Between two steps: a page's kv reads and writes take milliseconds of the worker's time, and
-- requests must not wait for a whole run. In `depot admin` there is no worker (depot.worker_id is
-- nil) and nobody else to let run.
local function let_others_run()
  if depot.worker_id then depot.sleep(0) end
end

-- Removes the expired entries; returns how many entries there were and how many it removed.
-- (`depot admin expire-all` shows its progress; the periodic job's depot.progress does nothing.)
function M.expire_entries(store, now, page_size)
  local total, removed, after = 0, 0, nil
  local expected = store:count()
  repeat
    local page = store:page(after, page_size)
    for _, item in ipairs(page) do
      total = total + 1
      if Store.expired(item.value, now) and store:remove_if_expired(item.key, now) then
        removed = removed + 1
      end
    end
    -- Entries added meanwhile can take the count past what was there at the start.
    depot.progress("expiry: entries checked", total, math.max(total, expected))
    after = page[#page] and page[#page].key
    let_others_run()
  until #page < page_size
  -- Fewer than counted (removed meanwhile): the line still ends at 100%.
  if total < expected then depot.progress("expiry: entries checked", total, total) end
  return total, removed
end

-- Whether the listed `item` holds bytes no entry owns (or a stale upload's), old enough to be no
-- upload in progress. Keys outside the store's layout are never touched.
local function is_orphan(store, item, now)
  local cache_id, uploading = Store.owner_of(item.key)
  if not cache_id or not item.mtime or item.mtime >= now - M.ORPHAN_GRACE_SECONDS then
    return false
  end
  return uploading or not store:exists(cache_id)
end

-- Removes the stored files that no entry owns, in one paged listing of the whole store (on S3 one
-- ListObjectsV2 per page, however few objects there are); returns how many. A page that cannot be
-- listed ends the sweep, logged: nothing after it is judged, so nothing more is removed.
function M.sweep_orphans(store, now, page_size)
  local removed, seen, cursor = 0, 0, nil
  repeat
    local page, next_cursor = store.blobs:list("", { cursor = cursor, limit = page_size })
    if not page then
      log.warn("file cache expiry: orphan sweep stopped, a listing failed",
               { error = next_cursor, files_seen = seen })
      break
    end
    for _, item in ipairs(page) do
      if is_orphan(store, item, now) and store.blobs:delete(item.key) then removed = removed + 1 end
    end
    seen = seen + #page
    cursor = next_cursor
    -- How many there are is known once the last page is in.
    depot.progress("expiry: stored files checked", seen, not cursor and seen or nil)
    if cursor then let_others_run() end
  until not cursor
  return removed
end

-- Both, logged; returns total and removed entries (what the admin command prints).
function M.run(store, why, page_size)
  page_size = page_size or M.PAGE_SIZE
  local now = depot.now()
  local total, removed = M.expire_entries(store, now, page_size)
  local orphans = M.sweep_orphans(store, now, page_size)
  local aborted, err = store.blobs:abort_stale_uploads(now - M.ORPHAN_GRACE_SECONDS)
  if not aborted then log.warn("file cache expiry: stale uploads not aborted", { error = err }) end
  log.info("file cache expiry", { run = why, total = total, removed = removed, orphan_files = orphans,
                                  stale_uploads = aborted })
  return total, removed
end

return M
