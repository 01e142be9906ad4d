-- Transformation requests in kv, with the durable queue that hands them to workers. Every change
-- is one transaction over both, so a request and its job never disagree (a lease taken is
-- recorded in the request it leases, a finished request has no job left).
--
-- Keys of the database "servicex_requests":
--   request:<uuid>                     the record (fields below)
--   id:<%012d id>                      → uuid, in submission order (listing, lookup by int id)
--   owner:<%012d user id>:<%012d id>   → uuid, one user's requests in order (0: auth disabled)
--   file:<uuid>:<%09d file id>         a file of the request's dataset
--   result:<uuid>:<%09d file id>       the transformer's report of that file (first one wins)
--   error:<uuid>:<%09d n>              a file failure reported by a transformer
-- A record holds the submitted fields under their JSON names ("tree-name", …) and the service's
-- own: id, submitted_by, submit_time/finish_time (epoch seconds), files (the dataset size, nil
-- until known), processed/skipped (results by outcome), stats (sums of the results), errors,
-- job (the queue job while one exists), worker (the last lease holder).
local kv = require "kv"
local queue = require "queue"

local M = {}

local db = kv.open("servicex_requests")
-- Request ids are uuid4s (36 characters) and int ids fit in 12 digits: a longer reference (from a
-- URL) names no request, and would be over kv's key length.
local MAX_REFERENCE = 36
M.TERMINAL = { Complete = true, Fatal = true, Canceled = true }

local function request_key(request_id) return "request:" .. request_id end
local function id_key(id) return string.format("id:%012d", id) end
local function owner_prefix(user_id) return string.format("owner:%012d:", user_id or 0) end
local function file_key(request_id, file_id) return string.format("file:%s:%09d", request_id, file_id) end
local function result_key(request_id, file_id) return string.format("result:%s:%09d", request_id, file_id) end
local function error_key(request_id, n) return string.format("error:%s:%09d", request_id, n) end

local work
-- The dispatch queue; its lease is the worker lease. Opened once per generation with the settings.
function M.configure(settings)
  work = queue.open("servicex_transformations", {
    timeout = settings.lease_seconds, attempts = settings.max_leases, max_pending = settings.max_pending, batch = 1,
  })
end

local function next_counter(tx, name)
  local value = tx:get(name) or 1
  tx:put(name, value + 1)
  return value
end

local function add_file_in(tx, record, fields)
  local file = { id = next_counter(tx, "next_file_id"), paths = fields.paths, adler32 = fields.adler32,
    file_size = fields.file_size, file_events = fields.file_events }
  tx:put(file_key(record.request_id, file.id), file)
  return file
end

-- Records `record` (without id) with the files of `file_list` (a list of paths, possibly empty)
-- and queues its job. Returns the stored record, or nil, "full" when the queue is full.
function M.create(record, file_list)
  return db:update(function(tx)
    local job_id = work:push({ request_id = record.request_id }, nil, tx)
    if not job_id then return nil, "full" end
    record.id = next_counter(tx, "next_id")
    for _, paths in ipairs(file_list) do add_file_in(tx, record, { paths = paths }) end
    if #file_list > 0 then record.files = #file_list end
    tx:put(request_key(record.request_id), record)
    tx:put(id_key(record.id), record.request_id)
    tx:put(owner_prefix(record.submitted_by) .. string.format("%012d", record.id), record.request_id)
    return record
  end)
end

-- The record of `reference`: a request id, or the int id as digits; nil if there is none.
function M.get(reference)
  if #reference > MAX_REFERENCE then return nil end
  local request_id = reference
  if reference:match("^%d+$") then request_id = db:get(id_key(tonumber(reference))) end
  return request_id and db:get(request_key(request_id)) or nil
end

-- Up to `limit` records in submission order after the index key `after` (nil: from the start);
-- `owner`: only this user's (nil: everyone's). Returns the records and the key to go on from
-- (nil at the end).
function M.page(owner, after, limit)
  local prefix = owner and owner_prefix(owner) or "id:"
  local items = db:iter({ prefix = prefix, from = after and after .. "\0" or nil, limit = limit })
  local records = {}
  for _, item in ipairs(items) do records[#records + 1] = db:get(request_key(item.value)) end
  return records, #items == limit and items[#items].key or nil
end

-- Sets the end of `record` (a status of M.TERMINAL) and ends its job, inside `tx`.
local function finish_in(tx, record, status, time)
  record.status = status
  record.finish_time = time
  if record.job then
    work:settle(record.job, true, nil, tx)
    record.job = nil
  end
end

-- Applies `change(record, tx, helpers)` to the stored request `request_id` in one transaction,
-- first renewing its lease when `renew` (a worker reported). The change returns the answer (and
-- may return false to write nothing). Returns nil when there is no such request.
-- helpers: finish(status), add_file(fields), file(id), result(file id) / put_result, add_error.
function M.change(request_id, time, renew, change)
  if #request_id > MAX_REFERENCE then return nil end
  return db:update(function(tx)
    local record = tx:get(request_key(request_id))
    if not record then return nil end
    local renewed = renew and record.job and work:renew(record.job, tx)
    local helpers = {
      finish = function(status) finish_in(tx, record, status, time) end,
      add_file = function(fields) return add_file_in(tx, record, fields) end,
      file = function(file_id) return tx:get(file_key(request_id, file_id)) end,
      result = function(file_id) return tx:get(result_key(request_id, file_id)) end,
      put_result = function(file_id, result) tx:put(result_key(request_id, file_id), result) end,
      add_error = function(entry)
        record.errors = (record.errors or 0) + 1
        tx:put(error_key(request_id, record.errors), entry)
      end,
    }
    local answer = change(record, helpers)
    if answer == false and not renewed then return false end
    tx:put(request_key(request_id), record)
    if answer == nil then return true end
    return answer
  end)
end

-- Hands the next due request to `worker`: its record (with the lease recorded in it), or nil
-- when there is none. Jobs of finished requests are dropped on the way; a request leased
-- max_leases times without finishing (its workers kept dying) fails as Fatal.
function M.lease(worker, time)
  return db:update(function(tx)
    while true do
      local job = work:claim(tx)[1]
      if not job then return nil end
      local record = tx:get(request_key(job.payload.request_id))
      if not record or M.TERMINAL[record.status] then
        work:settle(job, true, nil, tx)
      elseif job.attempt > work.attempts then
        record.job = nil
        record.status, record.finish_time = "Fatal", time
        record["failure-info"] = string.format("No worker finished the request within %d lease(s)", work.attempts)
        work:settle(job, false, record["failure-info"], tx)
        tx:put(request_key(record.request_id), record)
      else
        record.job, record.worker = job, worker
        tx:put(request_key(record.request_id), record)
        return record
      end
    end
  end)
end

function M.has_result(request_id, file_id) return db:exists(result_key(request_id, file_id)) end

-- Pages of a request's entries under `kind` ("file", "result", "error"), like M.page.
function M.entries(kind, request_id, after, limit)
  local items = db:iter({ prefix = kind .. ":" .. request_id .. ":", from = after and after .. "\0" or nil,
    limit = limit })
  local values = {}
  for i, item in ipairs(items) do values[i] = item.value end
  return values, #items == limit and items[#items].key or nil
end

return M
