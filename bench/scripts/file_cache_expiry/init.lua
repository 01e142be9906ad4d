-- For bench/expiry_s3.sh: POST /run runs the file cache's expiry once, on the file cache's own
-- entries and blob store (kv "file_cache", blob store "file_cache"), as its periodic job does,
-- and answers how long the run took.
local depot = require "depot"
local expiry = require "file_cache.expiry"
local Store = require "file_cache.store"
local service = ...

local store = Store.new({ root = depot.data_dir .. "/file_cache" })

service:post("/run", function()
  local started = depot.monotonic()
  local total, removed = expiry.run(store, "bench")
  return { seconds = depot.monotonic() - started, entries = total, removed = removed }
end)
