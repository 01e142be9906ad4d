-- Records of staging requests in kv, one per request whether it succeeded or not (the original's
-- documented but never built database table, with more fields): id, time, username, method,
-- source, target, status ("running", "success", "failed"), error, bytes, duration, and for large
-- copies bytes_done / bytes_total while they run. Ids start with the time in microseconds, so the
-- key order is the time order and "newest first" is a reverse scan. At most `max` records are
-- kept; the oldest go first. Batched writes (no fsync per request): a crash may lose the last
-- ~100 ms of records, never the staged data.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"
local kv = require "kv"

local M = {}
M.__index = M

local PRUNE_EVERY = 64
local SCAN_PAGE = 256

function M.new(max)
  return setmetatable({ db = kv.open("staging_records", { durable = false }), max = max, created = 0 }, M)
end

local function iso_time(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(seconds)) .. string.format(".%03dZ", math.floor(seconds % 1 * 1000))
end

-- Ids are safe in a URL path segment: digits, "-" and hex.
function M.valid_id(id) return type(id) == "string" and id:match("^%d+%-%x+$") ~= nil end

-- A new record with status "running"; returns it (its `id` set).
function M:start(fields)
  local now = depot.now()
  local record = {
    id = string.format("%016.0f-%s", math.floor(now * 1e6), crypto.hex(crypto.random_bytes(4))),
    time = iso_time(now), started = now, status = "running", error = json.null, bytes = 0,
    duration = json.null,
  }
  for key, value in pairs(fields) do record[key] = value end
  self.db:put(record.id, record)
  self.created = self.created + 1
  if self.created % PRUNE_EVERY == 0 then self:prune() end
  return record
end

-- Merges `fields` into the record, unless it is already finished (a late progress tick must not
-- undo the final status).
function M:update(id, fields)
  return self.db:update(function(tx)
    local record = tx:get(id)
    if not record or record.status ~= "running" then return false end
    for key, value in pairs(fields) do record[key] = value end
    tx:put(id, record)
    return true
  end)
end

-- Finishes the record: status "success" or "failed", the error reason, the duration.
function M:finish(record, status, fields)
  local done = { status = status, duration = depot.now() - record.started }
  for key, value in pairs(fields or {}) do done[key] = value end
  self.db:update(function(tx)
    local stored = tx:get(record.id) or record
    for key, value in pairs(done) do stored[key] = value end
    tx:put(record.id, stored)
  end)
end

function M:get(id) return self.db:get(id) end

-- Newest first, at most `limit`, only those matching `username` and `status` when given.
function M:list(username, status, limit)
  local found = setmetatable({}, json.array_mt)
  local before = nil
  while #found < limit do
    local page = self.db:iter({ reverse = true, to = before, limit = SCAN_PAGE })
    for _, row in ipairs(page) do
      local record = row.value
      if (not username or record.username == username) and (not status or record.status == status) then
        found[#found + 1] = record
        if #found == limit then break end
      end
    end
    if #page < SCAN_PAGE then break end
    before = page[#page].key
  end
  return found
end

function M:prune()
  local excess = self.db:count() - self.max
  if excess <= 0 then return end
  self.db:update(function(tx)
    for _, row in ipairs(tx:iter({ limit = excess })) do tx:delete(row.key) end
  end)
end

return M
