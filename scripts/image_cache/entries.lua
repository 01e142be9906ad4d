-- Cache entries: metadata in kv ("entry:<id>" → {state = "pending" | "image" | "error", ...}),
-- image bytes in files under the cache directory, and an index from a query's canonical form to
-- the live entry for it ("query:<sha256>" → id), so identical queries share one fetch.
local kv = require "kv"
local fs = require "fs"
local json = require "json"
local crypto = require "crypto"
local depot = require "depot"

local M = {}
M.__index = M

function M.new(directory)
  assert(fs.mkdir(directory))
  return setmetatable({ db = kv.open("image_cache"), directory = directory }, M)
end

local function query_key(query_text)
  return "query:" .. crypto.hex(crypto.sha256(assert(json.python_json(query_text))))
end

function M:path(id) return self.directory .. "/" .. id end
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
    tx:put("entry:" .. id, { id = id, state = "pending", query = query_text, expiry = expiry, index = index })
    tx:put(index, id)
    return id, true
  end)
end

-- Records the outcome of a fetch: an image (bytes to a file first) or an error.
function M:settle(id, outcome)
  if outcome.image then assert(fs.write(self:path(id), outcome.image)) end
  self.db:update(function(tx)
    local entry = tx:get("entry:" .. id)
    if not entry then return end -- pruned meanwhile
    if outcome.image then
      entry.state, entry.type, entry.mime, entry.size = "image", outcome.type, outcome.mime, #outcome.image
    else
      entry.state, entry.status_code, entry.msgs = "error", outcome.status_code, outcome.msgs
      entry.size = #json.encode({ status_code = outcome.status_code, msgs = outcome.msgs })
    end
    tx:put("entry:" .. id, entry)
  end)
end

function M:all()
  local list = {}
  for _, item in ipairs(self.db:iter({ prefix = "entry:" })) do list[#list + 1] = item.value end
  return list
end

-- Removes the expired entries (and their files); returns how many.
function M:prune()
  local now, removed = depot.now(), 0
  for _, entry in ipairs(self:all()) do
    if not (entry.expiry and entry.expiry >= now) then
      fs.remove(self:path(entry.id))
      self.db:update(function(tx)
        tx:delete("entry:" .. entry.id)
        if tx:get(entry.index) == entry.id then tx:delete(entry.index) end
      end)
      removed = removed + 1
    end
  end
  return removed
end

return M
