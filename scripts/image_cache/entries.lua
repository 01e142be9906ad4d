-- Cache entries: metadata in kv; the image bytes in the store (store.lua), which the entry names
-- in its `stored` field.
--
-- Keys (one "image_cache" database):
--   entry:<id>             the entry: {id, state = "pending" | "image" | "error", expiry, index,
--                          created, stored, ...}
--   text:<id>              a pending entry's query text, as posted: a string value of its own, so
--                          the entry's JSON neither escapes nor parses it (that was a tenth of a
--                          POST's cost); the settle drops it
--   pending:<id>,          the compact listing index, one per live entry, under the prefix of its
--   active:<id>            listing section: "<type>|<size>|<expiry>" (what /info shows, no JSON)
--   expiry:<time>:<id>     the expiry order (time zero-padded, so bytewise order is time order):
--                          the prune reads only what has expired
--   query:<sha256>         a query's canonical form → the live entry for it, so identical
--                          queries share one fetch
-- An entry and its index keys change together, in one update.
local kv = require "kv"
local json = require "json"
local crypto = require "crypto"
local depot = require "depot"
local log = require "log"
local GroupCommit = require "image_cache.group_commit"

local M = {}
M.__index = M

local LAYOUT = 3 -- 1: entries only; 2: with the listing and expiry indexes; 3: query text apart
local BATCH = 200 -- entries per page of a read-only scan: a page holds the worker well under 1 ms
-- A prune step's bounds: its write transaction runs on the worker's thread, and so does its
-- commit, which copies and writes every B-tree page it touched (several per entry). Other
-- requests of the worker wait for a step: it stops after PRUNE_STEP_SECONDS of deletions, so that
-- its commit ends well within the 5 ms a request may be held up.
local PRUNE_BATCH = 25
local PRUNE_STEP_SECONDS = 0.0005

local TYPES = { pending = "api_request", image = "image", error = "api_error" }

local function query_key(query_text)
  return "query:" .. crypto.hex(crypto.sha256(assert(json.python_json(query_text))))
end

local function expiry_key(entry)
  return string.format("expiry:%020.6f:%s", entry.expiry, entry.id)
end

local function listing_key(entry)
  return (entry.state == "pending" and "pending:" or "active:") .. entry.id
end

-- The expiry as a hexadecimal float ("%a"): it reads back as the same double, so /info renders
-- exactly what the entry holds, and tonumber reads it several times faster than decimal digits
-- (what layout 3 wrote, "%.17g", reads the same). The size as `..` writes an integer, "%d".
local function listing_value(entry)
  local size = entry.size or #(entry.query or "")
  local expiry = entry.expiry and string.format("%a", entry.expiry) or ""
  return (TYPES[entry.state] or "invalid") .. "|" .. size .. "|" .. expiry
end

-- `entry.query` (while pending) goes to its own key, never into the entry's JSON.
local function put_entry(tx, entry)
  local query = entry.query
  if query then tx:put("text:" .. entry.id, query) end
  entry.query = nil
  tx:put("entry:" .. entry.id, entry)
  entry.query = query
  tx:put(listing_key(entry), listing_value(entry))
  if entry.expiry then tx:put(expiry_key(entry), entry.id) end
end

local function delete_entry(tx, entry)
  tx:delete("entry:" .. entry.id)
  tx:delete("text:" .. entry.id)
  tx:delete(listing_key(entry))
  if entry.expiry then tx:delete(expiry_key(entry)) end
  if entry.index and tx:get(entry.index) == entry.id then tx:delete(entry.index) end
end

function M:get(id) return self.db:get("entry:" .. id) end
-- The query text of a pending entry.
function M:query(id) return self.db:get("text:" .. id) end

-- The live entry for an identical query (item.query_text, its query key item.index), or a new
-- pending one (id and expiry from item.make_id()). Returns id, created.
local function find_or_create_in(tx, item)
  local index = item.index
  local existing = tx:get(index)
  if existing then
    local entry = tx:get("entry:" .. existing)
    if entry and entry.expiry > depot.now() then return existing, false end
  end
  local id, expiry = item.make_id()
  put_entry(tx, { id = id, state = "pending", query = item.query_text, expiry = expiry, index = index,
                  created = depot.now() })
  tx:put(index, id)
  return id, true
end

-- Records the outcome of a fetch (item.id, item.outcome; item.file: where put_file wrote the
-- image, if it did): inline bytes go in the same commit as the entry. Returns false when the
-- entry was pruned meanwhile.
local function settle_in(store, tx, item)
  local id, outcome = item.id, item.outcome
  local entry = tx:get("entry:" .. id)
  if not entry then return false end
  tx:delete(listing_key(entry))
  if outcome.image then
    entry.state, entry.type, entry.mime, entry.size = "image", outcome.type, outcome.mime, #outcome.image
    entry.stored = item.file or store:put_inline(tx, id, outcome.image)
  else
    entry.state, entry.status_code, entry.msgs = "error", outcome.status_code, outcome.msgs
    entry.size = #json.encode({ status_code = outcome.status_code, msgs = outcome.msgs })
  end
  tx:delete("text:" .. id)
  put_entry(tx, entry)
  return true
end

function M.new(store)
  local self = setmetatable({
    db = kv.open("image_cache"),
    -- Settles and prunes need not wait for an fsync: if a crash loses a settle, the entry is
    -- pending again and the next start fetches it again; if it loses a prune step, the next
    -- prune removes those entries again (expired, they answer 404 meanwhile). Only the pending
    -- entry a POST answers for is durable.
    batched = kv.open("image_cache", { durable = false }),
    store = store,
  }, M)
  -- Creations and settles of one loop turn share a commit (durable when it has a creation).
  self.writes = GroupCommit.new("image_cache", self.db, self.batched)
  self.settle_in = function(tx, item) return settle_in(store, tx, item) end
  return self
end

-- The live entry for an identical query, or a new pending one, durable when this returns (in a
-- group commit with the POSTs that came with it). Returns id, created.
function M:find_or_create(query_text, make_id)
  -- Hashed before the group's transaction, which holds every writer of the process.
  return self.writes:run(find_or_create_in,
                         { query_text = query_text, index = query_key(query_text), make_id = make_id }, true)
end

-- Records the outcome of a fetch: an image (a file first, or inline bytes in the entry's commit)
-- or an error.
function M:settle(id, outcome)
  local file = outcome.image and self.store:put_file(id, outcome.image)
  local kept = self.writes:run(self.settle_in, { id = id, outcome = outcome, file = file })
  if file and not kept then self.store:remove_files({ id }) end
end

-- How many entries a listing section ("active" or "pending") holds.
function M:count(section) return self.db:count(section .. ":") end

-- Calls fn(items) with successive pages (lists of {key, value}, `size` or BATCH long) of the keys
-- under `prefix`, up to `to` (exclusive) if given, until fn returns false; fn may wait, as each
-- page is its own read.
local function each_page(db, prefix, to, fn, size)
  local from, limit = prefix, size or BATCH
  while true do
    local page = db:iter({ prefix = prefix, from = from, to = to, limit = limit })
    if #page == 0 then return end
    if fn(page) == false or #page < limit then return end
    from = page[#page].key .. "\0"
  end
end

-- Calls row(id, type, size, expiry) for each entry of a listing section ("active" or
-- "pending"), in id order: size as the decimal text the index holds, expiry a number (nil if the
-- entry has none); and page_end() (if given) after each page of rows. Either may wait; it stops
-- when page_end returns false. No table per row, and plain finds: /info's cost is this loop's.
function M:each_listed(section, row, page_end)
  local find, sub = string.find, string.sub
  local id_from = #section + 2
  each_page(self.db, section .. ":", nil, function(page)
    for i = 1, #page do
      local item = page[i]
      local value = item.value
      local size_at = find(value, "|", 1, true) + 1
      local expiry_at = find(value, "|", size_at, true) + 1
      row(sub(item.key, id_from), sub(value, 1, size_at - 2), sub(value, size_at, expiry_at - 2),
          tonumber(sub(value, expiry_at)))
    end
    if page_end then return page_end() end
  end)
end

-- Calls fn(id) for every entry still pending that was created before `time`.
function M:each_pending_since(time, fn)
  self:each_listed("pending", function(id)
    local entry = self:get(id)
    if entry and entry.state == "pending" and (entry.created or 0) < time then fn(id) end
  end)
end

-- Removes the expired entries (and their images) in expiry order, in steps that each hold the
-- worker for at most PRUNE_STEP_SECONDS (and PRUNE_BATCH entries), pausing between them for as
-- long as a step took; returns how many. Its cost follows what expired, not what lives.
function M:prune()
  local limit, removed, from = string.format("expiry:%020.6f", depot.now()), 0, "expiry:"
  while true do
    local started, cpu_started = depot.monotonic(), os.clock()
    local page = self.db:iter({ prefix = "expiry:", from = from, to = limit, limit = PRUNE_BATCH })
    if #page == 0 then return removed end
    local files, done = {}, 0
    self.batched:update(function(tx)
      local images, deadline = {}, depot.monotonic() + PRUNE_STEP_SECONDS
      done = 0
      for _, item in ipairs(page) do
        local entry = tx:get("entry:" .. item.value)
        if entry then
          delete_entry(tx, entry)
          if entry.state == "image" then images[#images + 1] = entry end
        end
        tx:delete(item.key)
        done = done + 1
        if depot.monotonic() >= deadline then break end
      end
      files = self.store:remove_inline(tx, images)
    end)
    local held = depot.monotonic() - started
    -- What bench/image_cache_scale.sh sets the probe's stalls against: the step's wall-clock span,
    -- and the process's CPU time meanwhile (the step's own, and what other threads ran), which
    -- tells the work from the waits for a CPU on a loaded machine.
    log.debug("image cache prune step", { removed = done, started = depot.now() - held, seconds = held,
                                          cpu_seconds = os.clock() - cpu_started })
    self.store:remove_files(files)
    removed = removed + done
    from = page[done].key .. "\0"
    -- As long as the step took: a worker kept busy without a pause loses its turn on a loaded
    -- machine's CPUs, and the requests it holds wait tens of milliseconds. At most 10 ms: a
    -- longer step waited (deleting files on S3) rather than held the worker.
    depot.sleep(math.min(depot.monotonic() - started, 0.01))
  end
end

-- Brings a database written by an earlier layout up to this one: builds the listing and expiry
-- indexes and drops settled entries' query text, a batch per update. Entries without an expiry
-- (never written by this service) are removed, as the prune would have.
function M:upgrade()
  if self.db:get("meta:layout") == LAYOUT then return 0 end
  local upgraded = 0
  each_page(self.db, "entry:", nil, function(page)
    local invalid, files = {}, {}
    self.db:update(function(tx)
      for _, item in ipairs(page) do
        local entry = tx:get(item.key) -- not item.value: requests may have settled it since
        if entry.state ~= "pending" then
          entry.query = nil
          tx:delete("text:" .. entry.id)
        end
        if entry.expiry then
          put_entry(tx, entry)
        else
          delete_entry(tx, entry)
          if entry.state == "image" then invalid[#invalid + 1] = entry end
        end
      end
      files = self.store:remove_inline(tx, invalid)
    end)
    self.store:remove_files(files)
    upgraded = upgraded + #page
    depot.sleep(0)
  end)
  self.db:put("meta:layout", LAYOUT)
  return upgraded
end

return M
