-- The floor under the image cache's POST /requests (bench/post_floor.sh): routes that each add one
-- piece of a POST's work to the one before, so that the bench can tell what each piece costs.
--   POST /floor/parse     (a) decode the 3.8 KB JSON body, answer an id
--   POST /floor/record    (b) + the durable, group-committed kv record of a pending entry: the
--                         image cache's five keys (entry, query text, listing, expiry, query index)
--   POST /floor/fetch     (c) + a background http.request (the image cache's options) to the
--                         trivial route POST /floor/upstream
--   POST /floor/kentik    (d) + the same request to the Kentik stub (tests/stubs/kentik_api),
--                         through the image cache's own upstream.fetch
-- Mounted next to the image cache (step (e)) and the Kentik stub, from the repo's scripts/
-- directory, so that image_cache.* modules resolve. Bench-only: never mounted by a config of the
-- repo.
local crypto = require "crypto"
local depot = require "depot"
local jobs = require "jobs"
local json = require "json"
local kv = require "kv"
local metrics = require "metrics"
local GroupCommit = require "image_cache.group_commit"
local upstream = require "image_cache.upstream"
local service = ...
local config = require("config").of(service)

local kentik = {
  email = "test@example.com", token = "secret-token", retries = 3, timeout = 60, backoff = 1,
  api_url = config.string("KENTIK_API_URL"),
}
local trivial = {}
for name, value in pairs(kentik) do trivial[name] = value end
trivial.api_url = config.string("FLOOR_URL")

-- One value over all workers, read from /metrics: the bench waits for 0 before it reads the CPU.
local pending = metrics.gauge("bench_floor_pending", "post_floor background requests in flight")
local db = kv.open("post_floor")
local records = GroupCommit.new("post_floor", db, kv.open("post_floor", { durable = false }))

local function record_in(tx, item)
  local id, query = item.id, item.query
  tx:put("text:" .. id, query)
  tx:put("entry:" .. id, { id = id, state = "pending", expiry = item.expiry, created = depot.now(),
                           index = item.index })
  tx:put("pending:" .. id, "api_request|" .. #query .. "|" .. string.format("%a", item.expiry))
  tx:put(string.format("expiry:%020.6f:%s", item.expiry, id), id)
  tx:put(item.index, id)
end

-- (a): the decoded body and an id for it; fails with 400 when it has no api_query.
local function parse(req)
  local text = req:body()
  local body = json.decode(text)
  local query = type(body) == "table" and json.member_text(text, "api_query")
  if not query then depot.fail(400, "no api_query") end
  local digest = crypto.hex(crypto.sha256(query))
  return digest .. "_" .. depot.now(), query, digest
end

-- (b): (a) and the durable record.
local function record(req)
  local id, query, digest = parse(req)
  records:run(record_in, { id = id, query = query, index = "query:" .. digest,
                           expiry = depot.now() + 600 }, true)
  return id, query
end

local function in_background(settings, query)
  pending:inc()
  jobs.after(0, function()
    pcall(upstream.fetch, settings, query)
    pending:dec()
  end)
end

service:post("/floor/parse", function(req) return { id = (parse(req)) } end)
service:post("/floor/record", function(req) return { id = (record(req)) } end)

service:post("/floor/fetch", function(req)
  local id, query = record(req)
  in_background(trivial, query)
  return { id = id }
end)

service:post("/floor/kentik", function(req)
  local id, query = record(req)
  in_background(kentik, query)
  return { id = id }
end)

-- The trivial upstream: what the Kentik stub answers, without reading the query.
local answer = json.encode({ dataUri = "data:image/png;base64," .. crypto.base64("png-image-bytes") })
service:post("/floor/upstream", function() return 200, answer, { ["Content-Type"] = "application/json" } end)
