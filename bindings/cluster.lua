-- Lua module `cluster`: periodic work that must run once per interval across every process that
-- shares the kv store (replicas behind a load balancer), not once per process.
--
--   local cluster = require "cluster"
--   service:on_start(function()
--     cluster.every("file_cache:expiry", 3600, function() expire() end [, { timeout = 30 }])
--   end)                                            → a handle with :cancel(), as jobs.every's
--
-- Each process ticks as jobs.every does; at a tick, one kv transaction on the lease record
-- {holder, next, busy_until} decides who runs. The holder — the process that ran last — runs at
-- each of its ticks, so a single process behaves exactly as with jobs.every. Another process takes
-- over only once `next` (the holder's last start + interval) has passed and no run is under way, so
-- two starts are never less than an interval apart, wherever they run. While `fn` runs, its holder
-- renews `busy_until` every timeout/3; if the holder dies, its lease runs out `timeout` seconds
-- later and the next tick elsewhere takes over. Lost lease writes (a power cut) only delay or
-- repeat one run, so they skip the fsync.
local crypto = require "crypto"
local depot = require "depot"
local jobs = require "jobs"
local kv = require "kv"

local M = {}

local leases = kv.open("cluster:leases", { durable = false })
-- This Lua state: a reloaded generation or a restarted process is a new holder.
local holder = crypto.token(12)

-- True when this process may start a run of `name` now; then the lease is taken.
local function acquire(name, seconds, timeout)
  return leases:update(function(tx)
    local time = depot.now()
    local lease = tx:get(name)
    if lease and lease.holder ~= holder and (time < lease.next or time < lease.busy_until) then
      return false
    end
    tx:put(name, { holder = holder, next = time + seconds, busy_until = time + timeout })
    return true
  end)
end

-- Moves `busy_until` (`until_time`: `timeout` ahead, or 0 when the run ended), if still the holder.
local function hold_until(name, until_time)
  leases:update(function(tx)
    local lease = tx:get(name)
    if not lease or lease.holder ~= holder then return end
    lease.busy_until = until_time
    tx:put(name, lease)
  end)
end

local function run(name, timeout, fn)
  -- A run the engine cuts short (cpu_slice, depot.deadline) never reaches the cancel below: its
  -- coroutine is dropped instead and collected. The renewer holds it only weakly and stops once it
  -- is gone, so the lease runs out rather than being renewed forever, one renewer per cut run.
  local run_coroutine = setmetatable({ (coroutine.running()) }, { __mode = "v" })
  local renewer
  renewer = jobs.every(timeout / 3, function(premature)
    if premature then return end
    if run_coroutine[1] == nil then return renewer:cancel() end
    hold_until(name, depot.now() + timeout)
  end)
  local ok, err = pcall(fn)
  renewer:cancel()
  hold_until(name, 0)
  if not ok then error(err, 0) end
end

function M.every(name, seconds, fn, options)
  assert(type(name) == "string" and name ~= "", "cluster.every: name must be a non-empty string")
  assert(type(seconds) == "number" and seconds > 0, "cluster.every: seconds must be a number > 0")
  assert(type(fn) == "function", "cluster.every: fn must be a function")
  local timeout = options and options.timeout or math.min(seconds, 30)
  assert(type(timeout) == "number" and timeout > 0, "cluster.every: timeout must be a number > 0")
  return jobs.every(seconds, function(premature)
    if not premature and acquire(name, seconds, timeout) then run(name, timeout, fn) end
  end)
end

return M
