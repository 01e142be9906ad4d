-- Lua module `queue`: durable jobs. Recorded in kv (LMDB) when pushed, run at least once,
-- retried with exponential backoff, and still there after a restart.
--
--   local queue = require "queue"
--   local mail = queue.open("mail", { attempts = 5, backoff = 1, max_pending = 10000, timeout = 60 })
--   mail:handler(function(payload, job) ... end)   -- at load time; raise to make the job retry
--   service:on_start(function() mail:start() end)  -- one runner per queue (worker 0)
--   mail:push({ to = "a@b" }, { delay = 0 } [, tx]) → job id, or nil, "queue mail is full"
--   mail:stats()                                    → { pending = n, dead = n }
--   mail:claim([tx]), mail:renew(job [, tx]), mail:settle(job, ok, err [, tx])
--                                   -- without a runner: work handed out by the script itself
--
-- A job is claimed under a lease (`timeout` seconds) in one kv transaction, so that of several
-- processes sharing the kv store (replicas) exactly one takes it: if its process dies while it
-- runs, the lease expires and the job runs again — handlers must tolerate running twice. The
-- runner stops a handler at `timeout` (its task's deadline); the lease it claims is one second
-- longer, the engine's deadline sweep, so that the stopped handler is gone before anyone claims the
-- job again. After `attempts` failures — errors, or leases that ran out (a handler that looped, hit
-- its deadline or died with its process) — a job moves to the dead-letter list (`mail:dead()` lists
-- them). The runner polls every `poll` seconds (default 0.2) and runs due jobs as tasks (they may
-- wait: http, fs, sleep).
-- push may be called anywhere kv may (handlers, timers, admin commands); handler and start at
-- load time and in on_start. On reload the runner stops (its timer fires prematurely) and the
-- new generation's on_start starts the next one; a job running at that moment finishes.
-- /metrics reads the job count under "#count" and the dead list (bindings/kv_stats.cpp): keep
-- that layout in step with it.
local crypto = require "crypto"
local kv = require "kv"
local jobs = require "jobs"
local depot_ok, depot = pcall(require, "depot")

local M = {}
local Queue = {}
Queue.__index = Queue

local function now()
  return depot_ok and depot.now() or os.time()
end

-- Keys sort by due time, so the runner reads only the jobs that are due.
local function due_key(at, id) return string.format("%017.6f|%s", at, id) end

-- What the engine's deadline sweep may add to a handler's `timeout` (engine/worker.cpp sweeps once
-- a second).
local DEADLINE_SWEEP = 1

function M.open(name, options)
  options = options or {}
  assert(type(name) == "string" and name ~= "", "queue.open: name must be a non-empty string")
  return setmetatable({
    name = name,
    attempts = options.attempts or 5,
    backoff = options.backoff or 1,
    max_pending = options.max_pending or 10000,
    timeout = options.timeout or 60,
    poll = options.poll or 0.2,
    batch = options.batch or 16,
    db_name = "queue:" .. name,
    db = kv.open("queue:" .. name),
    dead_db = kv.open("queue:" .. name .. ":dead"),
  }, Queue)
end

function Queue:handler(fn)
  assert(type(fn) == "function", "queue:handler: fn must be a function")
  self.run = fn
end

-- Runs `fn(tx)` on the queue's database: inside the caller's transaction `outer` (a transaction of
-- any kv database) when given, so that a job moves together with the caller's own records.
local function in_transaction(self, outer, fn)
  if outer then return fn(outer:db(self.db_name)) end
  return self.db:update(fn)
end

-- Records a job; returns its id, or nil and a reason when the queue holds max_pending jobs. With
-- `outer` (see in_transaction), inside that transaction.
function Queue:push(payload, options, outer)
  local delay = options and options.delay or 0
  -- Random bytes from the OS, not math.random: every Lua state (each worker, each replica) starts
  -- math.random from the same seed, and two pushes in one millisecond would share an id.
  local id = string.format("%x", math.floor(now() * 1000)) .. crypto.token(9)
  return in_transaction(self, outer, function(tx)
    local count = tx:get("#count") or 0
    if count >= self.max_pending then return nil, "queue " .. self.name .. " is full" end
    tx:put("#count", count + 1)
    tx:put(due_key(now() + delay, id), { id = id, payload = payload, attempt = 0 })
    return id
  end)
end

function Queue:stats()
  return { pending = self.db:get("#count") or 0, dead = self.dead_db:count() }
end

function Queue:dead(limit)
  local list = {}
  for i, pair in ipairs(self.dead_db:iter({ limit = limit or 100 })) do list[i] = pair.value end
  return list
end

-- Moves a job whose last lease ran out to the dead letters: its handler never settled it.
local function bury_expired(self, tx, job)
  tx:put("#count", math.max(0, (tx:get("#count") or 1) - 1))
  job.error = string.format("its lease of %g s ran out %d times (the handler never settled it)",
                            self.timeout, job.attempt)
  job.lease = nil
  tx:db(self.db_name .. ":dead"):put(job.id, job)
end

-- Takes up to `batch` due jobs under leases `lease_seconds` ahead (so a crash while one runs makes
-- it due again). A due job that still carries a lease is one whose lease ran out: out of attempts
-- and with `bury_expired_jobs` (the runner), it goes to the dead letters instead; claim() hands it
-- out with its attempt past `attempts`, for the script to decide (ServiceX fails its request).
local function take(self, tx, lease_seconds, bury_expired_jobs)
  local time = now()
  local due_until = due_key(time, "~")
  local claimed = {}
  -- Due keys start with a digit: from "0" skips "#count", which would take a slot of the batch.
  -- The range read does not depend on the time (the due jobs are a prefix of the first `batch`
  -- keys), so that a backend that re-runs fn until its reads are stable (PostgreSQL) converges.
  for _, pair in ipairs(tx:iter({ from = "0", limit = self.batch })) do
    if pair.key > due_until then break end
    local job = pair.value
    tx:delete(pair.key)
    if bury_expired_jobs and job.lease and job.attempt >= self.attempts then
      bury_expired(self, tx, job)
    else
      job.attempt = job.attempt + 1
      job.lease = due_key(time + lease_seconds, job.id)
      tx:put(job.lease, job)
      claimed[#claimed + 1] = job
    end
  end
  return claimed
end

-- Takes up to `batch` due jobs, each under a lease `timeout` seconds ahead. With `outer`, inside
-- that transaction.
function Queue:claim(outer)
  return in_transaction(self, outer, function(tx) return take(self, tx, self.timeout) end)
end

-- Moves the lease of the claimed `job` `timeout` seconds ahead (job.lease changes); false when
-- the job no longer holds that lease (settled, or expired and claimed again). With `outer`,
-- inside that transaction.
function Queue:renew(job, outer)
  local lease = due_key(now() + self.timeout, job.id)
  local renewed = in_transaction(self, outer, function(tx)
    local stored = tx:get(job.lease)
    if not stored then return false end
    stored.lease = lease
    tx:delete(job.lease)
    tx:put(lease, stored)
    return true
  end)
  if renewed then job.lease = lease end
  return renewed
end

-- Ends the claimed `job`: done when `ok`, else retried later or, out of attempts, moved to the
-- dead letters with `err`. With `outer`, inside that transaction.
function Queue:settle(job, ok, err, outer)
  in_transaction(self, outer, function(tx)
    if not tx:exists(job.lease) then return end -- its lease expired and another claim took it
    tx:delete(job.lease)
    if ok or job.attempt >= self.attempts then
      tx:put("#count", math.max(0, (tx:get("#count") or 1) - 1))
    end
    if ok then return end
    if job.attempt >= self.attempts then
      job.error = tostring(err)
      tx:db(self.db_name .. ":dead"):put(job.id, job)
    else
      local retry_at = now() + self.backoff * 2 ^ (job.attempt - 1)
      tx:put(due_key(retry_at, job.id), { id = job.id, payload = job.payload, attempt = job.attempt })
    end
  end)
end

-- Starts polling (call it from service:on_start). Each due job runs as its own task.
function Queue:start()
  assert(self.run, "queue:start: no handler for queue " .. self.name)
  self.ticker = jobs.every(self.poll, function(premature)
    if premature then return end
    local claimed = self.db:update(function(tx) return take(self, tx, self.timeout + DEADLINE_SWEEP, true) end)
    for _, job in ipairs(claimed) do
      jobs.after(0, function(premature)
        if premature then return end -- stopping: the lease runs out and the job runs again later
        -- Past it the engine stops the handler (as a loop is stopped by limits.cpu_slice): the
        -- job is not settled, its lease runs out, and that counts as a failed attempt.
        depot.deadline(self.timeout)
        local ok, err = pcall(self.run, job.payload, job)
        self:settle(job, ok, err)
      end)
    end
  end)
end

function Queue:stop()
  if self.ticker then self.ticker:cancel() end
end

return M
