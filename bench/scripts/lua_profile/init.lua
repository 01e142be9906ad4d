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

-- GET /lua_profile/costs: microseconds per call of the pieces of a POST the profile names, each
-- timed over `n` calls (default 20000) in this worker, count hook on as in every service: what a
-- POST pays for each of them, apart from the rest.
local crypto = require "crypto"
local depot = require "depot"
local jobs = require "jobs"
local json = require "json"
local kv = require "kv"
local log = require "log"
local GroupCommit = require "image_cache.group_commit"
local ids = require "image_cache.ids"

local body = string.format('{"api_query": {"imageType": "png", "padding": "%s", "stub": {"name": "costs"}}, "ttl": 600}',
                           string.rep("y", 3700))
local query = json.member_text(body, "api_query")
local batched = kv.open("lua_profile_costs", { durable = false })
local writes = GroupCommit.new("lua_profile_costs", kv.open("lua_profile_costs"), batched)
local Object = {}
Object.__index = Object

local function per_call(n, fn)
  local started = os.clock()
  for _ = 1, n do fn() end
  return (os.clock() - started) * 1e6 / n
end

-- Starts `n` tasks each doing `fn`, waits until all ended: the per-task cost, waits included.
local function per_task(n, fn)
  local ended, started = 0, depot.monotonic()
  local cpu_started = os.clock()
  for _ = 1, n do jobs.after(0, function() fn(); ended = ended + 1 end) end
  while ended < n do depot.sleep(0) end
  return (os.clock() - cpu_started) * 1e6 / n, (depot.monotonic() - started) * 1e6 / n
end

service:get("/lua_profile/costs", function(req)
  local n = tonumber(req.query.n) or 20000
  local decoded = json.decode(query)
  local lines = {}
  local function add(name, us) lines[#lines + 1] = string.format("%9.2f us  %s", us, name) end
  add("empty loop turn", per_call(n, function() end))
  add("log.info below the level, with a fields table", per_call(n, function()
    log.info("image fetched", { id = "x", status_code = 200, type = "png" })
  end))
  add("two objects with a metatable (dispatch's req and res)", per_call(n, function()
    setmetatable({ _exchange = 1, _route = 2, method = "POST", path = "/requests", id = "r", params = {} }, Object)
    setmetatable({ _exchange = 1 }, Object)
  end))
  add("http.request's options table, as upstream.fetch builds it", per_call(n, function()
    local _ = { headers = { ["Content-Type"] = "application/json", ["X-CH-Auth-Email"] = "e",
                            ["X-CH-Auth-API-Token"] = "t", ["User-Agent"] = "depot-image-cache" },
                body = query, timeout = 60, connect_timeout = 60, retries = 3,
                retry_on = { 429, 502, 503, 504 }, backoff = 1 }
  end))
  add("json.decode of the 3.8 KB body", per_call(n, function() json.decode(body) end))
  add("json.member_text(body, 'api_query')", per_call(n, function() json.member_text(body, "api_query") end))
  add("json.python_json of the query", per_call(n, function() json.python_json(query) end))
  add("json.python_repr of the query", per_call(n, function() json.python_repr(query) end))
  add("crypto.hex(crypto.sha256(query))", per_call(n, function() crypto.hex(crypto.sha256(query)) end))
  add("ids.make (python_repr, sha256, expiry text)", per_call(n, function() ids.make(query, 1.8e9) end))
  add("json.encode of an entry table", per_call(n, function()
    json.encode({ id = "x_1.5", state = "pending", expiry = 1.8e9, index = "query:abc", created = 1.7e9 })
  end))
  add("walk of the decoded query's members (the stub's has_object_null)", per_call(n, function()
    for _, item in pairs(decoded) do if type(item) == "table" then for _ in pairs(item) do end end end
  end))
  local cpu, wall = per_task(math.floor(n / 10), function() end)
  add(string.format("jobs.after(0, fn) and its task (wall %.1f us)", wall), cpu)
  cpu, wall = per_task(math.floor(n / 10), function() writes:run(function(tx) tx:put("k", "v") end, {}) end)
  add(string.format("group_commit:run of one batched put, in groups (wall %.1f us)", wall), cpu)
  return table.concat(lines, "\n") .. "\n"
end)
