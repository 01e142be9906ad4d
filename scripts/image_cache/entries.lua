-- Cache entries: metadata in kv; the image bytes in the store (store.lua), which the entry names
-- in its `stored` field.
--
-- Keys (one "image_cache" database):
--   entry:<id>             the entry: {id, state = "pending" | "image" | "error", expiry, index,
--                          created, query (only while pending: a settled entry drops it), ...}
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

local M = {}
M.__index = M

local LAYOUT = 2 -- 1: entries only; 2: with the listing and expiry indexes
local BATCH = 200 -- entries per step of a scan: a step holds the worker well under a millisecond

local TYPES = { pending = "api_request", image = "image", error = "api_error" }

function M.new(store)
  return setmetatable({ db = kv.open("image_cache"), store = store }, M)
end

local function query_key(query_text)
  return "query:" .. crypto.hex(crypto.sha256(assert(json.python_json(query_text))))
end

local function expiry_key(entry)
  return string.format("expiry:%020.6f:%s", entry.expiry, entry.id)
end

local function listing_key(entry)
  return (entry.state == "pending" and "pending:" or "active:") .. entry.id
end

-- %.17g reads back as the same double, so /info renders exactly what the entry holds.
local function listing_value(entry)
  local size = entry.size or #(entry.query or "")
  local expiry = entry.expiry and string.format("%.17g", entry.expiry) or ""
  return (TYPES[entry.state] or "invalid") .. "|" .. size .. "|" .. expiry
end

local function put_entry(tx, entry)
  tx:put("entry:" .. entry.id, entry)
  tx:put(listing_key(entry), listing_value(entry))
  if entry.expiry then tx:put(expiry_key(entry), entry.id) end
end

local function delete_entry(tx, entry)
  tx:delete("entry:" .. entry.id)
  tx:delete(listing_key(entry))
  if entry.expiry then tx:delete(expiry_key(entry)) end
  if entry.index and tx:get(entry.index) == entry.id then tx:delete(entry.index) end
end

function M:get(id) return self.db:get("entry:" .. id) end

-- The live entry for an identical query, or a new pending one. Returns id, created.
function M:find_or_create(query_text, make_id)
  local index = query_key(query_text)
  return self.db:update(function(tx)
    local existing = tx:get(index)
    if existing then
      local entry = tx:get("entry:" .. existing)
      if entry and entry.expiry > depot.now() then return existing, false end
    end
    local id, expiry = make_id()
    put_entry(tx, { id = id, state = "pending", query = query_text, expiry = expiry, index = index,
                    created = depot.now() })
    tx:put(index, id)
    return id, true
  end)
end

-- Records the outcome of a fetch: an image (bytes to the store first) or an error.
function M:settle(id, outcome)
  local stored = outcome.image and self.store:put(id, outcome.image)
  local kept = self.db:update(function(tx)
    local entry = tx:get("entry:" .. id)
    if not entry then return false end -- pruned meanwhile
    tx:delete(listing_key(entry))
    if outcome.image then
      entry.state, entry.type, entry.mime, entry.size = "image", outcome.type, outcome.mime, #outcome.image
      entry.stored = stored
    else
      entry.state, entry.status_code, entry.msgs = "error", outcome.status_code, outcome.msgs
      entry.size = #json.encode({ status_code = outcome.status_code, msgs = outcome.msgs })
    end
    entry.query = nil
    put_entry(tx, entry)
    return true
  end)
  if stored and not kept then self.store:remove({ { id = id, stored = stored } }) end
end

-- How many entries a listing section ("active" or "pending") holds.
function M:count(section) return self.db:count(section .. ":") end

-- Calls fn(items) with successive pages (lists of {key, value}) of the keys under `prefix`, up
-- to `to` (exclusive) if given, until fn returns false; fn may wait, as each page is its own read.
local function each_page(db, prefix, to, fn)
  local from = prefix
  while true do
    local page = db:iter({ prefix = prefix, from = from, to = to, limit = BATCH })
    if #page == 0 then return end
    if fn(page) == false or #page < BATCH then return end
    from = page[#page].key .. "\0"
  end
end

-- Calls fn(rows) with pages of a listing section, rows of {id, type, size, expiry (or nil)},
-- until fn returns false.
function M:each_listed(section, fn)
  local prefix = section .. ":"
  each_page(self.db, prefix, nil, function(page)
    local rows = {}
    for i, item in ipairs(page) do
      local kind, size, expiry = item.value:match("^([^|]*)|([^|]*)|(.*)$")
      rows[i] = { id = item.key:sub(#prefix + 1), type = kind, size = tonumber(size), expiry = tonumber(expiry) }
    end
    return fn(rows)
  end)
end

-- Calls fn(id) for every entry still pending that was created before `time`.
function M:each_pending_since(time, fn)
  self:each_listed("pending", function(rows)
    for _, row in ipairs(rows) do
      local entry = self:get(row.id)
      if entry and entry.state == "pending" and (entry.created or 0) < time then fn(row.id) end
    end
  end)
end

-- Removes the expired entries (and their files), a batch at a time in expiry order, yielding
-- between batches; returns how many. Its cost follows what expired, not what lives.
function M:prune()
  local limit, removed = string.format("expiry:%020.6f", depot.now()), 0
  each_page(self.db, "expiry:", limit, function(page)
    local images = {}
    self.db:update(function(tx)
      for _, item in ipairs(page) do
        local entry = tx:get("entry:" .. item.value)
        if entry then
          delete_entry(tx, entry)
          if entry.state == "image" then images[#images + 1] = entry end
        end
        tx:delete(item.key)
      end
    end)
    self.store:remove(images)
    removed = removed + #page
    depot.sleep(0)
  end)
  return removed
end

-- Brings a database written by an earlier layout up to this one: builds the listing and expiry
-- indexes and drops settled entries' query text, a batch per update. Entries without an expiry
-- (never written by this service) are removed, as the prune would have.
function M:upgrade()
  if self.db:get("meta:layout") == LAYOUT then return 0 end
  local upgraded = 0
  each_page(self.db, "entry:", nil, function(page)
    local invalid = {}
    self.db:update(function(tx)
      for _, item in ipairs(page) do
        local entry = tx:get(item.key) -- not item.value: requests may have settled it since
        if entry.state ~= "pending" then entry.query = nil end
        if entry.expiry then
          put_entry(tx, entry)
        else
          delete_entry(tx, entry)
          if entry.state == "image" then invalid[#invalid + 1] = entry end
        end
      end
    end)
    self.store:remove(invalid)
    upgraded = upgraded + #page
    depot.sleep(0)
  end)
  self.db:put("meta:layout", LAYOUT)
  return upgraded
end

return M
