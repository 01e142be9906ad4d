-- The typical routes bench/hello.sh compares with nginx + Lua (ROUTE=json, ROUTE=kv): a small JSON
-- document encoded per request, and one kv read. The nginx side does the same with cjson and a
-- shared dict (bench/hello.sh writes its config).
local kv = require "kv"
local service = ...

local db = kv.open("bench", { durable = false })

service:get("/json", function()
  return { message = "hello", items = { 1, 2, 3 }, ok = true }
end)

service:get("/kv", function()
  return db:get("greeting")
end)

service:on_start(function() db:put("greeting", "hello\n") end)
