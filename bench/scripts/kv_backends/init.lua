-- Routes that time kv from Lua on whatever backend the server has (bench/kv_backends.sh runs
-- them on LMDB and on PostgreSQL): each answers with its operations per second.
local depot = require "depot"
local kv = require "kv"
local service = ...

local function rate(count, seconds) return math.floor(count / seconds) end

-- n puts, n gets and n read-modify-write updates of distinct keys, one after another in one task.
service:get("/ops", function(req)
  local n = tonumber(req.query.n) or 1000
  local durable = req.query.durable ~= "0"
  local db = kv.open("bench_" .. tostring(req.query.run or "") .. (durable and "_durable" or "_batched"), { durable = durable })
  local value = string.rep("v", 32)
  local start = depot.monotonic()
  for i = 1, n do db:put(string.format("key%012d", i), value) end
  local puts = rate(n, depot.monotonic() - start)
  start = depot.monotonic()
  for i = 1, n do assert(db:get(string.format("key%012d", i))) end
  local gets = rate(n, depot.monotonic() - start)
  start = depot.monotonic()
  for i = 1, n do
    db:update(function(tx)
      local key = string.format("key%012d", i)
      tx:put(key, tx:get(key) .. "!")
    end)
  end
  local updates = rate(n, depot.monotonic() - start)
  return { ops = n, durable = durable, puts_per_s = puts, gets_per_s = gets, updates_per_s = updates }
end)

-- n increments of one shared counter: run from many clients at once, they contend.
service:post("/increment", function(req)
  local n = tonumber(req.query.n) or 100
  local db = kv.open("bench_counter")
  for _ = 1, n do db:update(function(tx) tx:put("n", (tx:get("n") or 0) + 1) end) end
  return { ok = true }
end)

service:get("/counter", function() return { n = kv.open("bench_counter"):get("n") or 0 } end)
