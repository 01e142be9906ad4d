-- The image cache service, compatible with the Kentik image cache API: POST /requests returns an
-- id at once and fetches the chart from the Kentik API in the background; GET /image/<id> waits
-- (without holding a thread) until it is there. See docs/services/image-cache.md.
local depot = require "depot"
local cluster = require "cluster"
local json = require "json"
local jobs = require "jobs"
local log = require "log"
local service = ...
-- Without a Kentik account the service stays unmounted, and the log line names both settings.
require("config").require_all(service, { "KT_AUTH_EMAIL", "KT_AUTH_TOKEN" })
local config = require("config").of(service)
local ids = require "image_cache.ids"
local upstream = require "image_cache.upstream"
local Store = require "image_cache.store"
local Entries = require "image_cache.entries"
local info = require "image_cache.info"
local api = require "image_cache.openapi"

local retries = config.integer("KENTIK_API_RETRIES", 3)
local timeout = config.number("KENTIK_API_TIMEOUT", 60)
local backoff = config.number("KENTIK_API_BACKOFF", 1)
local settings = {
  email = config.string("KT_AUTH_EMAIL"),
  token = config.string("KT_AUTH_TOKEN"),
  api_url = config.string("KENTIK_API_URL", "https://api.kentik.com/api/v5"),
  retries = retries, timeout = timeout, backoff = backoff,
}
local default_ttl = config.integer("DEFAULT_TTL", 300)
-- The original README's promise (its code used 185 s whatever the settings): every attempt may
-- take the whole timeout, plus the backoff between attempts, plus 5 s.
local total_backoff = backoff * (2 ^ retries - 1)
local wait_timeout = config.number("ENTRY_WAIT_TIMEOUT", (retries + 1) * timeout + total_backoff + 5)
local maintenance_period = config.number("CACHE_MAINTENANCE_PERIOD", 60)
local store = Store.new(config.string("CACHE_PATH", depot.data_dir .. "/image_cache"),
                        { inline_limit = config.integer("INLINE_IMAGE_BYTES", Store.INLINE_LIMIT) })
local entries = Entries.new(store)
local favicon = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/favicon.ico"

local CONTENT_TYPES = { png = "image/png", jpeg = "image/jpeg", svg = "image/svg+xml", pdf = "application/pdf" }

-- FastAPI's validation errors (pydantic v1) are 422 {"detail": [...]}.
local function unprocessable(loc, msg, kind)
  return 422, { detail = { { loc = setmetatable(loc, json.array_mt), msg = msg, type = kind } } }
end

-- pydantic v1's int coercion: "60" → 60, 60.7 → 60, true → 1; nil when it would refuse.
local function as_int(value)
  if value == true then return 1 elseif value == false then return 0 end
  if type(value) == "number" then return value >= 0 and math.floor(value) or math.ceil(value) end
  if type(value) == "string" and value:match("^%s*[+-]?%d+%s*$") then return tonumber(value) end
  return nil
end

-- FastAPI's answers for what no route of the original handles.
service:on_error(function(status, message)
  if status == 404 and message == "not found" then return { detail = "Not Found" } end
  if status == 405 then return { detail = "Method Not Allowed" } end
  if status >= 500 then return 500, "Internal Server Error", { ["Content-Type"] = "text/plain; charset=utf-8" } end
  return { detail = message }
end)

-- FastAPI 0.92 parses a body as JSON only without a Content-Type or with application/json or
-- application/*+json; any other body reaches pydantic as bytes, which is not a dict.
local function json_content_type(value)
  if not value then return true end
  local media = (value:match("^%s*([^;%s]+)") or ""):lower()
  return media == "application/json" or (media:match("^application/.+%+json$") ~= nil)
end

local function not_found(id) return 404, { loc = id, msg = "Image not found", type = "error" } end

-- `query_text`: the query of the entry the caller just created (no need to read it back); without
-- it, the entry is read and fetched only if still pending.
local function fetch(id, query_text)
  if not query_text then
    local entry = entries:get(id)
    if not entry or entry.state ~= "pending" then return end
    query_text = entries:query(id)
  end
  local ok, outcome = pcall(upstream.fetch, settings, query_text)
  if not ok then outcome = { status_code = 502, msgs = { "fetch failed: " .. tostring(outcome) } } end
  entries:settle(id, outcome)
  log.info("image fetched", { id = id, status_code = outcome.status_code, type = outcome.type })
  depot.notify("image:" .. id)
end

service:post("/requests", function(req)
  local text = req:body()
  if text == "" then return unprocessable({ "body" }, "field required", "value_error.missing") end
  if not json_content_type(req:header("Content-Type")) then
    return unprocessable({ "body" }, "value is not a valid dict", "type_error.dict")
  end
  local body, err = json.decode(text)
  if body == nil and err then return unprocessable({ "body", 0 }, err, "value_error.jsondecode") end
  if type(body) ~= "table" or getmetatable(body) == json.array_mt then
    return unprocessable({ "body" }, "value is not a valid dict", "type_error.dict")
  end
  local ttl = default_ttl
  if body.ttl == json.null then
    return unprocessable({ "body", "ttl" }, "none is not an allowed value", "type_error.none.not_allowed")
  elseif body.ttl ~= nil then
    ttl = as_int(body.ttl)
    if not ttl then return unprocessable({ "body", "ttl" }, "value is not a valid integer", "type_error.integer") end
  end
  -- As written: Python's str() of it follows its key order and number spelling.
  local query_text = json.member_text(text, "api_query")
  if body.api_query == nil or body.api_query == json.null or not query_text then
    return 400, { loc = { api_query = json.null, ttl = ttl }, msg = "Incomplete request, missing 'api_query'",
                  type = "invalid request" }
  end
  local id, created = entries:find_or_create(query_text, function()
    local expiry = depot.now() + ttl
    return ids.make(query_text, expiry), expiry
  end)
  if created then
    jobs.after(0, function(premature) if not premature then fetch(id, query_text) end end)
  end
  return { id = id }
end, api.create_request)

service:get("/image/:id", function(req, res)
  local id = req.params.id
  local expiry = ids.expiry(id)
  if not expiry or expiry < depot.now() then return not_found(id) end
  local entry = entries:get(id)
  if not entry then return not_found(id) end
  -- Re-checked every second: a fetch finishing on another worker between our read and our
  -- wait must not leave us asleep until the timeout.
  local deadline = depot.monotonic() + wait_timeout
  while entry and entry.state == "pending" and depot.monotonic() < deadline do
    depot.wait("image:" .. id, math.min(1, deadline - depot.monotonic()))
    entry = entries:get(id)
  end
  if not entry then return not_found(id) end
  if entry.state == "image" then
    assert(store:send(req, res, id, entry.stored, CONTENT_TYPES[entry.type] or "image/unknown"))
    return
  end
  if entry.state == "error" then
    return entry.status_code, { loc = id, msg = entry.msgs, type = "Kentik API error" }
  end
  return 500, { loc = id, msg = "Internal error (entry status: pending)", type = "error" }
end, api.image)

service:get("/info", function(req, res)
  info.stream(entries, res, depot.now())
end, api.info_listing)

service:get("/favicon.ico", function(req, res)
  assert(res:file(favicon, { content_type = "image/x-icon" }))
end, api.favicon)

-- At start: index a cache written by an earlier version, prune, then refetch what was still
-- pending when the server stopped — in the background, so the server answers at once.
service:on_start(function()
  -- Entries created from here on are being fetched by the requests that created them.
  local started = depot.now()
  local upgraded = entries:upgrade()
  local removed = entries:prune()
  local pending = 0
  entries:each_pending_since(started, function(id)
    pending = pending + 1
    jobs.after(0, function(premature) if not premature then fetch(id) end end)
  end)
  log.info("image cache started", { upgraded = upgraded, pruned = removed, refetching = pending,
                                    wait_timeout = wait_timeout })
  -- Once per period across all replicas sharing the kv store, not once per replica.
  cluster.every(service.name .. ":prune", maintenance_period, function() entries:prune() end)
end)

-- Last: a service that failed to load must not have claimed its mounts' API pages.
require("openapi").serve(service, api.info)
