-- Records of staging requests in kv, one per request whether it succeeded or not (the original's
-- documented but never built database table, with more fields): id, time, username, method,
-- source, target, status ("running", "success", "failed"), error, bytes, duration, and for large
-- copies bytes_done / bytes_total while they run. Ids start with the time in microseconds, so the
-- key order is the time order and "newest first" is a reverse scan. At most `max` records are
-- kept; the oldest go first. Batched writes (no fsync per request): a crash may lose the last
-- ~100 ms of records, never the staged data.
--
-- A filtered list must not scan every record (the web page polls it every few seconds), so an
-- index database holds, for each record, "user:<h>:<id>", "status:<h>:<id>" and
-- "user_status:<h>:<h>:<id>", where <h> is a short digest of the value: any username or status a
-- client sends makes a key of fixed length with no separator inside. Index keys are written,
-- moved and deleted in the same transaction as their record, so a list reads at most `limit`
-- index rows and `limit` records.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"
local kv = require "kv"
local metrics = require "metrics"

local M = {}
M.__index = M

local PRUNE_EVERY = 64
local INDEX = "staging_record_index"
-- Present once every record written before the index existed has its index keys.
local INDEXED = "indexed"
local ID_MAX_BYTES = 64

local rows_read = metrics.counter("staging_record_rows_read_total",
  "Records and index rows read to answer record lists")

local function digest(value) return crypto.hex(crypto.blake2b(value, { size = 16 })) end

-- The index prefix of a filter (either part may be nil; nil for no filter at all).
local function index_prefix(username, status)
  if username and status then return "user_status:" .. digest(username) .. ":" .. digest(status) .. ":" end
  if username then return "user:" .. digest(username) .. ":" end
  if status then return "status:" .. digest(status) .. ":" end
  return nil
end

local function index_keys(record)
  local username, status = record.username or "", record.status or ""
  return { index_prefix(username, nil) .. record.id, index_prefix(nil, status) .. record.id,
           index_prefix(username, status) .. record.id }
end

local function put_index(index, record)
  for _, key in ipairs(index_keys(record)) do index:put(key, record.id) end
end

local function delete_index(index, record)
  for _, key in ipairs(index_keys(record)) do index:delete(key) end
end

-- Records from before the index: indexed once, in one transaction (the first worker to load does
-- it; the others then find the marker).
local function index_older_records(db)
  db:update(function(tx)
    local index = tx:db(INDEX)
    if index:exists(INDEXED) then return end
    for _, row in ipairs(tx:iter()) do put_index(index, row.value) end
    index:put(INDEXED, true)
  end)
end

function M.new(max)
  local db = kv.open("staging_records", { durable = false })
  index_older_records(db)
  return setmetatable({ db = db, index = kv.open(INDEX, { durable = false }), max = max, created = 0 }, M)
end

local function iso_time(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(seconds)) .. string.format(".%03dZ", math.floor(seconds % 1 * 1000))
end

-- Ids are safe in a URL path segment: digits, "-" and hex; bounded, as kv keys are.
function M.valid_id(id)
  return type(id) == "string" and #id <= ID_MAX_BYTES and id:match("^%d+%-%x+$") ~= nil
end

-- A new record with status "running"; returns it (its `id` set). The fields must be valid UTF-8
-- (records are stored as JSON).
function M:start(fields)
  local now = depot.now()
  local record = {
    id = string.format("%016.0f-%s", math.floor(now * 1e6), crypto.hex(crypto.random_bytes(4))),
    time = iso_time(now), started = now, status = "running", error = json.null, bytes = 0,
    duration = json.null,
  }
  for key, value in pairs(fields) do record[key] = value end
  self.db:update(function(tx)
    tx:put(record.id, record)
    put_index(tx:db(INDEX), record)
  end)
  self.created = self.created + 1
  if self.created % PRUNE_EVERY == 0 then self:prune() end
  return record
end

-- Merges `fields` (progress: never the username nor the status) into the record, unless it is
-- already finished (a late progress tick must not undo the final status).
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
    local index = tx:db(INDEX)
    local stored = tx:get(record.id)
    if stored then delete_index(index, stored) else stored = record end
    for key, value in pairs(done) do stored[key] = value end
    tx:put(record.id, stored)
    put_index(index, stored)
  end)
end

function M:get(id) return self.db:get(id) end

-- Newest first, at most `limit`, only those matching `username` and `status` when given.
function M:list(username, status, limit)
  local found = setmetatable({}, json.array_mt)
  local prefix = index_prefix(username, status)
  if not prefix then
    for _, row in ipairs(self.db:iter({ reverse = true, limit = limit })) do found[#found + 1] = row.value end
    rows_read:inc(#found)
    return found
  end
  local ids = self.index:iter({ reverse = true, prefix = prefix, limit = limit })
  for _, row in ipairs(ids) do
    -- Pruned between the two reads: skipped.
    found[#found + 1] = self.db:get(row.value)
  end
  rows_read:inc(#ids + #found)
  return found
end

function M:prune()
  local excess = self.db:count() - self.max
  if excess <= 0 then return end
  self.db:update(function(tx)
    local index = tx:db(INDEX)
    for _, row in ipairs(tx:iter({ limit = excess })) do
      tx:delete(row.key)
      delete_index(index, row.value)
    end
  end)
end

return M
