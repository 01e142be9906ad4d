-- LuaJIT's sampling profiler (jit.profile) over one worker's Lua state, for bench/post_floor.sh
-- PROFILE=<step>: POST /lua_profile/start begins sampling the state of the worker that serves it
-- (LuaJIT profiles one state per process at a time), POST /lua_profile/stop ends it and answers
-- the samples as text, most first: per Lua function where the sample fell (`self`) and per
-- function with its two callers (`stack`), each split by what the VM was doing: I interpreting,
-- C in a C function called from there (its Lua caller is named), G collecting garbage. Samples
-- taken while the worker ran no Lua at all land on the next Lua function it runs, with vmstate C.
-- Bench-only: never mounted by a config of the repo.
local profile = require "jit.profile"
local service = ...

local self_counts, stack_counts, states, total

local function add(counts, key, samples) counts[key] = (counts[key] or 0) + samples end

local function sample(thread, samples, vmstate)
  total = total + samples
  add(states, vmstate, samples)
  add(self_counts, vmstate .. " " .. profile.dumpstack(thread, "pF", 1), samples)
  add(stack_counts, vmstate .. " " .. profile.dumpstack(thread, "pF < ", 3), samples)
end

local function top(counts, limit)
  local keys = {}
  for key in pairs(counts) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return counts[a] > counts[b] end)
  local lines = {}
  for i = 1, math.min(limit, #keys) do
    lines[i] = string.format("%6.2f%%  %s", counts[keys[i]] * 100 / total, keys[i])
  end
  return table.concat(lines, "\n")
end

service:post("/lua_profile/start", function()
  self_counts, stack_counts, states, total = {}, {}, {}, 0
  profile.start("fi1", sample) -- every 1 ms of the process's CPU time
  return "started\n"
end)

service:post("/lua_profile/stop", function()
  profile.stop()
  local shares = {}
  for state, count in pairs(states) do shares[#shares + 1] = string.format("%s %.1f%%", state, count * 100 / total) end
  return string.format("%d samples; by vmstate: %s\n\nself:\n%s\n\nwith two callers:\n%s\n", total,
                       table.concat(shares, ", "), top(self_counts, 40), top(stack_counts, 40))
end)
