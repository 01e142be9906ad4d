-- Expiry of cached files, run by the periodic job and by `depot admin expire-all` alike: every
-- entry past its expiration (placeholders 7 days after creation, files 30 days after their last
-- upload or download) is removed, then files that lost their metadata (a crash between the two
-- writes of an upload or a removal) and stale temporary files of interrupted uploads.
local depot = require "depot"
local fs = require "fs"
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

local function is_orphan(store, directory, name, now)
  local cache_id = name:match("^%.(%x+)%.tmp%.") or name
  if cache_id == name and (not Store.valid_id(name) or store:exists(name)) then return false end
  local info = fs.stat(directory .. "/" .. name)
  return info ~= nil and info.type == "file" and info.mtime < now - M.ORPHAN_GRACE_SECONDS
end

-- Removes files under the store's root that no entry owns; returns how many.
function M.sweep_orphans(store, now)
  local removed = 0
  local prefixes = fs.list(store.root) or {}
  for done, prefix in ipairs(prefixes) do
    local directory = store.root .. "/" .. prefix
    for _, name in ipairs(fs.list(directory) or {}) do
      if is_orphan(store, directory, name, now) and fs.remove(directory .. "/" .. name) then
        removed = removed + 1
      end
    end
    depot.progress("expiry: file directories swept", done, #prefixes)
  end
  return removed
end

-- Both, logged; returns total and removed entries (what the admin command prints).
function M.run(store, why)
  local now = depot.now()
  local total, removed = M.expire_entries(store, now)
  local orphans = M.sweep_orphans(store, now)
  log.info("file cache expiry", { run = why, total = total, removed = removed, orphan_files = orphans })
  return total, removed
end

return M
