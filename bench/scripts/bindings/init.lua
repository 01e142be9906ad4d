-- Routes that time the Lua bindings from Lua (bench/bindings.sh): each answers with its figures.
local depot = require "depot"
local kv = require "kv"
local crypto = require "crypto"
local http = require "http"
local service = ...

local function rate(count, seconds) return math.floor(count / seconds) end

service:get("/kv", function(req)
  local n = tonumber(req.query.n) or 100000
  local durable = req.query.durable == "1"
  local db = kv.open("bench" .. (durable and "_durable" or "_batched"), { durable = durable })
  local value = string.rep("v", 32)
  local start = depot.monotonic()
  for i = 1, n do db:put(string.format("key%012d", i), value) end
  local put_seconds = depot.monotonic() - start
  start = depot.monotonic()
  for i = 1, n do assert(db:get(string.format("key%012d", i))) end
  local get_seconds = depot.monotonic() - start
  return { ops = n, durable = durable, puts_per_s = rate(n, put_seconds), gets_per_s = rate(n, get_seconds) }
end)

service:get("/blake2b", function(req)
  local mib = tonumber(req.query.mib) or 256
  local piece = crypto.random_bytes(64 * 1024)
  local stream = crypto.blake2b_stream()
  local start = depot.monotonic()
  for _ = 1, mib * 16 do stream:update(piece) end
  stream:final()
  local streamed = depot.monotonic() - start
  local whole = string.rep(piece, 16 * 16) -- 16 MiB in one call: libsodium's own speed
  start = depot.monotonic()
  for _ = 1, mib / 16 do crypto.blake2b(whole) end
  local one_shot = depot.monotonic() - start
  local bytes = mib * 1024 * 1024
  return { mib = mib, streamed_gb_per_s = bytes / streamed / 1e9, one_shot_gb_per_s = bytes / one_shot / 1e9 }
end)

service:get("/target", function() return "ok" end)

-- One outbound request per incoming one: wrk on this route measures http client requests/s.
service:get("/proxy", function(req)
  local response = assert(http.get("http://" .. req:header("host") .. "/target"))
  return response.body
end)

service:get("/http", function(req)
  local n = tonumber(req.query.n) or 1000
  local url = "http://" .. req:header("host") .. "/target"
  local start = depot.monotonic()
  for _ = 1, n do assert(http.get(url)) end
  return { sequential_requests_per_s = rate(n, depot.monotonic() - start) }
end)
