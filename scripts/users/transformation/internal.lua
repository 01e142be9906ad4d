-- The worker protocol: external transformer processes lease requests and report on them over
-- HTTP, in place of the original's RabbitMQ queues and Kubernetes jobs. A lease
-- (POST /servicex/internal/lease) hands out the next request of the durable dispatch queue for
-- SERVICEX_WORKER_LEASE_SECONDS; every report renews it; a worker that stops reporting loses it
-- and the request goes to the next worker that asks. The reports are the original's internal
-- endpoints (DID finder and transformer callbacks), by request id. Every call carries
-- `Authorization: Bearer <SERVICEX_WORKER_TOKEN>` (the original's were unauthenticated); without
-- that setting the worker API refuses everything.
local crypto = require "crypto"
local depot = require "depot"
local json = require "json"
local log = require "log"
local arguments = require "users.arguments"
local store = require "users.transformation.store"
local views = require "users.transformation.views"
local api = require "users.transformation.openapi"

local M = {}

local BASE = "/servicex/internal/transformation/:request_id"
local MAX_FILES_PAGE = 1000

local function blank(name) return nil, 400, { message = { [name] = "This field cannot be blank" } } end

-- The JSON object of the body, or nil, 400, body.
local function json_body(req)
  local body = json.decode(req:body())
  if type(body) ~= "table" or getmetatable(body) ~= json.object_mt then
    return nil, 400, { message = "The body must be a JSON object" }
  end
  return body
end

local function number(value)
  if type(value) == "number" then return value end
  return nil
end

local function not_found(request_id) return 404, { message = string.format("Request not found with id: '%s'", request_id) } end

-- Adds one transformer result to the record's counters and sums.
local function count_result(record, result)
  if result.status == "success" then
    record.processed = (record.processed or 0) + 1
  else
    record.skipped = (record.skipped or 0) + 1
  end
  local stats = record.stats or { count = 0, messages = 0, time = 0, rate = 0, bytes = 0, events = 0 }
  stats.count = stats.count + 1
  stats.messages = stats.messages + (result.messages or 0)
  stats.time = stats.time + (result.time or 0)
  stats.rate = stats.rate + (result.rate or 0)
  stats.bytes = stats.bytes + (result.bytes or 0)
  stats.events = stats.events + (result.events or 0)
  stats.min_time = math.min(stats.min_time or math.huge, result.time or 0)
  stats.max_time = math.max(stats.max_time or -math.huge, result.time or 0)
  record.stats = stats
end

-- Complete once every file of a known dataset has a result.
local function complete_if_done(record, helpers)
  if record.files and views.files_remaining(record) == 0 and not store.TERMINAL[record.status] then
    helpers.finish("Complete")
    log.info("Transformation request complete", { transformation = record.request_id })
  end
end

function M.mount(service, settings)
  local token = settings.worker_token

  -- The worker token check, then handler(req, res).
  local function worker_only(handler)
    return function(req, res)
      if token == "" then return 403, { message = "The worker API is disabled: SERVICEX_WORKER_TOKEN is not set" } end
      local header = req:header("Authorization")
      if not header then return 401, { message = "Missing Authorization Header" } end
      local presented = header:match("^Bearer%s+(%S+)%s*$")
      if not (presented and crypto.equals(presented, token)) then
        return 401, { message = "Not Authorized: invalid worker token" }
      end
      return handler(req, res)
    end
  end

  -- A report on request `request_id`: change(record, helpers, req) inside one transaction that
  -- also renews the lease; 404 for an unknown request.
  local function report(method, path, docs, change)
    service:route(method, BASE .. path, worker_only(function(req)
      local request_id = req.params.request_id
      local answer, status, body = change(req, request_id)
      if answer == nil and status then return status, body end
      return answer
    end), docs)
  end

  local function changed(request_id, change)
    local result = store.change(request_id, depot.now(), true, change)
    if result == nil then return nil, not_found(request_id) end
    return result
  end

  service:on_start(function()
    if token == "" then
      log.warn("the transformation worker API is disabled: SERVICEX_WORKER_TOKEN is not set")
    end
  end)

  service:post("/servicex/internal/lease", worker_only(function(req)
    local args, status, body = arguments.parse(req, { { "worker", required = true } })
    if not args then return status, body end
    local record = store.lease(args.worker, depot.now())
    if not record then return 204 end
    log.info("Transformation request leased", { transformation = record.request_id, worker = args.worker,
      lease = record.job.attempt })
    local host = settings.advertised_hostname ~= "" and settings.advertised_hostname or req:header("Host") or ""
    return {
      request_id = record.request_id,
      did = record.did_bare or json.null,
      scheme = record.scheme or json.null,
      ["service-endpoint"] = string.format("http://%s/servicex/internal/transformation/%s", host, record.request_id),
      ["fileset-complete"] = record.files ~= nil,
      lease = record.job.attempt,
      ["lease-seconds"] = settings.lease_seconds,
      request = views.record(record, settings.object_store),
    }
  end), api.lease)

  -- The files known so far, a page at a time, each with whether it has a result already (for a
  -- worker taking over a request another worker left).
  service:get(BASE .. "/files", worker_only(function(req)
    local request_id = req.params.request_id
    if not store.get(request_id) then return not_found(request_id) end
    local limit = math.min(tonumber(req.query.limit or "") or MAX_FILES_PAGE, MAX_FILES_PAGE)
    if limit < 1 then limit = MAX_FILES_PAGE end
    local after = tonumber(req.query.after or "")
    local files, next_key = store.entries("file", request_id,
      after and string.format("file:%s:%09d", request_id, after) or nil, limit)
    local list = setmetatable({}, json.array_mt)
    for i, file in ipairs(files) do
      list[i] = { ["file-id"] = file.id, paths = file.paths, adler32 = file.adler32 or json.null,
        ["file-size"] = file.file_size or json.null, ["file-events"] = file.file_events or json.null,
        done = store.has_result(request_id, file.id) }
    end
    return { files = list, next = next_key and files[#files].id or json.null }
  end), api.files)

  report("POST", "/status", api.report_status, function(req, request_id)
    local args, status, body = arguments.parse(req, { { "timestamp", required = true }, { "severity" }, { "info" },
      { "source" } })
    if not args then return nil, status, body end
    local _, missing, answer = changed(request_id, function(record, helpers)
      if args.severity ~= "fatal" then
        log.debug("transformation status", { transformation = request_id, severity = args.severity, source = args.source,
          info = args.info })
        return false
      end
      log.error("Fatal error reported", { transformation = request_id, source = args.source, info = args.info })
      if store.TERMINAL[record.status] then return false end
      record["failure-info"] = args.info
      helpers.finish("Fatal")
    end)
    if missing then return nil, missing, answer end
    return "Ok"
  end)

  report("PUT", "/files", api.add_file, function(req, request_id)
    local body, status, message = json_body(req)
    if not body then return nil, status, message end
    local paths = body.paths or body.file_path
    if type(paths) == "table" then paths = table.concat(paths, ",") end
    if type(paths) ~= "string" or paths == "" then return blank("paths") end
    local file, missing, answer = changed(request_id, function(_, helpers)
      return helpers.add_file({ paths = paths, adler32 = body.adler32, file_size = number(body.file_size),
        file_events = number(body.file_events) })
    end)
    if not file then return nil, missing, answer end
    return { ["request-id"] = request_id, ["file-id"] = file.id }
  end)

  report("PUT", "/complete", api.fileset_complete, function(req, request_id)
    local body, status, message = json_body(req)
    if not body then return nil, status, message end
    local files = number(body.files)
    if not files or files < 0 or files ~= math.floor(files) then return blank("files") end
    local _, missing, answer = changed(request_id, function(record, helpers)
      record.files = files
      record.lookup = { skipped = number(body["files-skipped"]), events = number(body["total-events"]),
        bytes = number(body["total-bytes"]), seconds = number(body["elapsed-time"]) }
      log.info("Completed fileset for request", { transformation = request_id, files = files })
      complete_if_done(record, helpers)
    end)
    if missing then return nil, missing, answer end
    return "Ok"
  end)

  report("POST", "/start", api.start, function(_, request_id)
    local refused, missing, answer = changed(request_id, function(record)
      if record.status == "Canceled" or store.TERMINAL[record.status] then return { status = record.status } end
      record.status = "Running"
    end)
    if missing then return nil, missing, answer end
    if type(refused) == "table" then
      return nil, 409, { message = string.format("Transformation request %s is %s", request_id, refused.status) }
    end
    return "Ok"
  end)

  report("POST", "/:file_id/status", api.file_status, function(req, request_id)
    local args, status, body = arguments.parse(req, { { "timestamp", required = true },
      { "status-code", required = true }, { "pod-name" }, { "info" } })
    if not args then return nil, status, body end
    local file_id = tonumber(req.params.file_id:match("^%d+$") or "")
    if not file_id then return nil, 404, { message = "File not found with id: " .. req.params.file_id } end
    local _, missing, answer = changed(request_id, function(_, helpers)
      if args["status-code"] ~= "failure" then return false end
      local file = helpers.file(file_id) or {}
      helpers.add_error({ ["pod-name"] = args["pod-name"] or json.null, file = file.paths or json.null,
        events = file.file_events or json.null, info = args.info or json.null })
    end)
    if missing then return nil, missing, answer end
    return "Ok"
  end)

  report("PUT", "/file-complete", api.file_complete, function(req, request_id)
    local body, status, message = json_body(req)
    if not body then return nil, status, message end
    local file_id = number(body["file-id"])
    if not file_id then return blank("file-id") end
    if type(body.status) ~= "string" then return blank("status") end
    local result = { file_id = file_id, file_path = type(body["file-path"]) == "string" and body["file-path"] or nil,
      status = body.status, time = number(body["total-time"]), bytes = number(body["total-bytes"]),
      events = number(body["total-events"]), rate = number(body["avg-rate"]), messages = number(body["num-messages"]) }
    local _, missing, answer = changed(request_id, function(record, helpers)
      -- At least once: a worker taking over may report a file again; the first report counts.
      if helpers.result(file_id) then return false end
      helpers.put_result(file_id, result)
      count_result(record, result)
      complete_if_done(record, helpers)
    end)
    if missing then return nil, missing, answer end
    return "Ok"
  end)
end

return M
