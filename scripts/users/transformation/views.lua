-- The JSON shapes of a transformation request as the original's API answers them (specs/users.md
-- §4.9): the record, its status, and the original's time format. What the service keeps for
-- itself (the queue job, counters' internals) and the object store's keys never appear.
local json = require "json"

local M = {}

local function or_null(value)
  if value == nil then return json.null end
  return value
end

-- `%Y-%m-%dT%H:%M:%S.%fZ` (UTC, microseconds), or null.
function M.time(seconds)
  if not seconds then return json.null end
  local whole = math.floor(seconds)
  local micros = math.floor((seconds - whole) * 1e6 + 0.5)
  if micros >= 1000000 then whole, micros = whole + 1, 0 end
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%06dZ", micros)
end

function M.files_remaining(record)
  if not record.files then return json.null end
  return math.max(0, record.files - (record.processed or 0) - (record.skipped or 0))
end

local SUBMITTED = { "did", "columns", "selection", "tree-name", "image", "workers", "result-destination",
  "result-format", "workflow-name", "generated-code-cm", "status", "failure-info", "app-version",
  "code-gen-image", "title" }

-- The record as GET /servicex/transformation/<id> answers it. `object_store`: the settings'
-- endpoint and TLS flag, added for object-store requests (never the keys).
function M.record(record, object_store)
  local view = { request_id = record.request_id, id = record.id, ["submitted-by"] = or_null(record.submitted_by) }
  for _, name in ipairs(SUBMITTED) do view[name] = or_null(record[name]) end
  view["files-processed"] = record.processed or 0
  view["files-skipped"] = record.skipped or 0
  view["files-remaining"] = M.files_remaining(record)
  view["submit-time"] = M.time(record.submit_time)
  view["finish-time"] = M.time(record.finish_time)
  if object_store and record["result-destination"] == "object-store" then
    view["minio-endpoint"] = object_store.endpoint
    view["minio-secured"] = object_store.secured
  end
  return view
end

-- The sums of a request's results as the original's TransformationResult.statistics, or null.
local function statistics(record)
  local stats = record.stats
  if not stats or stats.count == 0 then return json.null end
  return {
    ["total-messages"] = stats.messages, ["min-time"] = stats.min_time, ["max-time"] = stats.max_time,
    ["avg-time"] = stats.time / stats.count, ["total-time"] = stats.time, ["avg-rate"] = stats.rate / stats.count,
    ["total-bytes"] = stats.bytes, ["total-events"] = stats.events,
  }
end

function M.status(record)
  return {
    status = record.status, ["request-id"] = record.request_id,
    ["submit-time"] = M.time(record.submit_time), ["finish-time"] = M.time(record.finish_time),
    ["files-processed"] = record.processed or 0, ["files-skipped"] = record.skipped or 0,
    ["files-remaining"] = M.files_remaining(record), stats = statistics(record),
  }
end

-- One result as the status details list it (TransformationResult.to_json).
function M.result(record, result)
  return {
    id = result.file_id, ["request-id"] = record.request_id, did = record.did, ["file-id"] = result.file_id,
    ["file-path"] = result.file_path, transform_status = result.status, transform_time = result.time,
    ["total-events"] = result.events, ["total-bytes"] = result.bytes, ["avg-rate"] = result.rate,
    messages = result.messages,
  }
end

return M
