-- A stand-in for Slack webhooks and response_urls and for Mailgun, served by Depot in the tests:
-- POST /in/<name...> records the request (method, body, headers) and answers by the name's first
-- segment: "fail" → 500 always, "flaky" → 500 the first time then 200, anything else → 200.
-- GET /out/<name...> returns what was recorded there, in order.
local json = require "json"
local kv = require "kv"
local service = ...
-- In kv: each worker thread runs its own copy of this script.
local received = kv.open("notify_sink", { durable = false })

service:post("/in/*name", function(req)
  local name = req.params.name
  local request = { body = req:body(), headers = req.headers }
  local count = received:update(function(tx)
    local list = tx:get(name) or {}
    list[#list + 1] = request
    tx:put(name, list)
    return #list
  end)
  local kind = name:match("^[^/]*")
  if kind == "fail" or (kind == "flaky" and count == 1) then return 500, "stub failure" end
  return 200, "ok"
end)

service:get("/out/*name", function(req)
  return { requests = setmetatable(received:get(req.params.name) or {}, json.array_mt) }
end)
