-- Group commit: the writes that tasks of one worker ask for during one turn of its event loop run
-- together in one kv transaction, in the order asked. Each LMDB commit writes every B-tree page it
-- dirtied, one pwrite each (~10 for an image cache entry, whose keys lie in five parts of the
-- tree): concurrent POSTs that share a commit share those pages, and on a durable handle its fsync.
-- A task that asks waits one turn of the loop more (the flush is a timer at 0 s), then for the
-- commit.
local depot = require "depot"
local jobs = require "jobs"

local M = {}
M.__index = M

-- `db`: the kv handle the groups commit with (durable or batched); `apply(tx, item)`: what one
-- item writes, run inside the group's transaction (like a db:update function, it may run again
-- on a retry and must only act on tx); `name` tells the groups' wake-up events apart.
function M.new(name, db, apply)
  return setmetatable({ name = name, db = db, apply = apply, open = nil, serial = 0 }, M)
end

local function flush(self, group)
  if self.open == group then self.open = nil end -- later items start the next group
  local ok, err = pcall(self.db.update, self.db, function(tx)
    for _, item in ipairs(group.items) do item.result = { self.apply(tx, item) } end
  end)
  group.done, group.error = true, not ok and err or nil
  depot.notify_local(group.event) -- its waiters are tasks of this worker
end

-- Adds `item` to this worker's next group commit and waits until it committed; returns what
-- `apply` returned for it, or raises the transaction's error (every item of the group fails).
function M:run(item)
  local group = self.open
  if not group then
    self.serial = self.serial + 1
    group = { items = {}, event = string.format("group_commit:%s:%s:%s:%d", self.name,
                                                depot.generation, depot.worker_id, self.serial) }
    self.open = group
    -- Also when premature (a reload or stop): the tasks waiting on the group still need it.
    jobs.after(0, function() flush(self, group) end)
  end
  group.items[#group.items + 1] = item
  -- The flush cannot come before this wait (it runs at a later turn of the loop); the timeout is
  -- a re-check, not a deadline.
  while not group.done do depot.wait(group.event, 1) end
  if group.error then error(group.error, 0) end
  return unpack(item.result)
end

return M
