-- Group commit: the writes that tasks of one worker ask for during one turn of its event loop run
-- together in one kv transaction, in the order asked, whatever their kind. Each LMDB commit writes
-- every B-tree page it dirtied, one pwrite each (~10 for an image cache entry, whose keys lie in
-- five parts of the tree): writes that share a commit share those pages, and on a durable handle
-- its fsync. A group commits durably when one of its items asks for it; the others then become
-- durable too, at no extra cost since the commit happens anyway. A task that asks for a durable
-- write waits one turn of the loop more (the flush is a timer at 0 s), then for the commit. A group
-- of batched writes alone waits up to BATCHED_DELAY for one to come (then it flushes at the next
-- turn): batched writes rarely come in the same turn as durable ones (an image cache settle ends a
-- fetch, a creation starts with a POST), and each commit of their own cost its page writes.
local depot = require "depot"
local jobs = require "jobs"

local M = {}
M.__index = M

M.BATCHED_DELAY = 0.01

-- `durable_db`, `batched_db`: handles of one database, with and without durability (kv.open's
-- `durable`); `name` tells the groups' wake-up events apart.
function M.new(name, durable_db, batched_db)
  return setmetatable({ name = name, durable_db = durable_db, batched_db = batched_db, open = nil,
                        serial = 0 }, M)
end

local function flush(self, group)
  if group.flushed then return end -- its delayed timer, once a durable item brought it forward
  group.flushed = true
  if self.open == group then self.open = nil end -- later items start the next group
  local db = group.durable and self.durable_db or self.batched_db
  local items = group.items
  local ok, err = pcall(db.update, db, function(tx)
    for i = 1, #items do
      local item = items[i]
      item.result = { item.apply(tx, item) }
    end
  end)
  group.done, group.error = true, not ok and err or nil
  depot.notify_local(group.event) -- its waiters are tasks of this worker
end

-- Adds `item` to this worker's next group commit, to be written by `apply(tx, item)` (run inside
-- the group's transaction: like a db:update function, it may run again on a retry and must only
-- act on tx), and waits until it committed, on disk if `durable`. Returns what `apply` returned
-- for it, or raises the transaction's error (every item of the group fails).
function M:run(apply, item, durable)
  local group = self.open
  if not group then
    self.serial = self.serial + 1
    group = { items = {}, event = string.format("group_commit:%s:%s:%s:%d", self.name,
                                                depot.generation, depot.worker_id, self.serial) }
    self.open = group
    -- Also when premature (a reload or stop): the tasks waiting on the group still need it.
    jobs.after(durable and 0 or M.BATCHED_DELAY, function() flush(self, group) end)
  elseif durable and not group.durable then
    jobs.after(0, function() flush(self, group) end)
  end
  item.apply = apply
  group.items[#group.items + 1] = item
  if durable then group.durable = true end
  -- The flush cannot come before this wait (it runs at a later turn of the loop); the timeout is
  -- a re-check, not a deadline.
  while not group.done do depot.wait(group.event, 1) end
  if group.error then error(group.error, 0) end
  return unpack(item.result)
end

return M
