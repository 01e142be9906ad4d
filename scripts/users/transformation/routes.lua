-- The users' side of the transformation API (specs/users.md §4.9): submit, list, read, status,
-- errors and cancel, all behind auth_required. Unlike the original, a user sees and cancels only
-- their own requests (admins: everyone's; a foreign request is "not found", so ids cannot be
-- probed), and no object-store key is ever part of an answer.
local depot = require "depot"
local json = require "json"
local log = require "log"
local jwt = require "jwt"
local store = require "users.transformation.store"
local views = require "users.transformation.views"
local submit = require "users.transformation.submit"
local stream = require "users.stream"
local api = require "users.transformation.openapi"

local M = {}

local function not_found(reference)
  return 404, { message = "Transformation request not found with id: " .. reference }
end

-- `user`: the auth_required answer (a user record, or true with auth disabled).
local function visible(record, user)
  return user == true or user.admin == true or record.submitted_by == user.id
end

-- reqparse's type=bool reads Python's bool(); "false" would be true there, not here.
local function truthy(text)
  text = (text or ""):lower()
  return text == "true" or text == "1" or text == "yes"
end

function M.mount(service, policy, settings)
  -- auth_required, then handler(req, res, user).
  local function signed_in(handler)
    return function(req, res)
      local user, status, body = policy:auth_required(req)
      if not user then return status, body end
      return handler(req, res, user)
    end
  end

  -- handler(req, res, user, record) for a request the user may see.
  local function own_request(handler)
    return signed_in(function(req, res, user)
      local reference = req.params.request_id
      local record = store.get(reference)
      if not (record and visible(record, user)) then return not_found(reference) end
      return handler(req, res, user, record)
    end)
  end

  service:post("/servicex/transformation", signed_in(function(req, _, user)
    local fields, file_list, body = submit.check(req:body(), settings)
    if not fields then return file_list, body end
    fields.request_id = jwt.uuid4()
    fields.status = "Submitted"
    fields.submit_time = depot.now()
    if user ~= true then fields.submitted_by = user.id end
    local record = store.create(fields, file_list)
    if not record then
      log.error("transformation request refused: the dispatch queue is full")
      return 503, { message = "Error setting up transformer queues" }
    end
    log.info("Transformation request submitted", { transformation = record.request_id, user = record.submitted_by })
    return { request_id = record.request_id }
  end), api.submit)

  service:get("/servicex/transformation", signed_in(function(req, res, user)
    local text = req.query.submitted_by
    local submitted_by = text and tonumber(text:match("^%s*[+-]?%d+%s*$") or "")
    if text and not submitted_by then
      return 400, { message = { submitted_by = string.format("invalid literal for int() with base 10: '%s'", text) } }
    end
    local owner = submitted_by
    if user ~= true and not user.admin then
      owner = user.id
      if submitted_by and submitted_by ~= user.id then owner = nil end
    end
    local nobody = user ~= true and not user.admin and owner == nil
    stream.list(res, '{"requests": [', "]}", function(after)
      if nobody then return {}, nil end
      local records, next_after = store.page(owner, after, stream.PAGE)
      for i, record in ipairs(records) do records[i] = views.record(record, settings.object_store) end
      return records, next_after
    end)
  end), api.list)

  service:get("/servicex/transformation/:request_id", own_request(function(_, _, _, record)
    return views.record(record, settings.object_store)
  end), api.read)

  service:get("/servicex/transformation/:request_id/status", own_request(function(req, res, _, record)
    local status = views.status(record)
    if not truthy(req.query.details) then return status end
    local open = json.encode(status):sub(1, -2) .. ', "details": ['
    stream.list(res, open, "]}", function(after)
      local results, next_after = store.entries("result", record.request_id, after, stream.PAGE)
      for i, result in ipairs(results) do results[i] = views.result(record, result) end
      return results, next_after
    end)
  end), api.status)

  service:get("/servicex/transformation/:request_id/errors", own_request(function(_, res, _, record)
    stream.list(res, '{"errors": [', "]}", function(after)
      return store.entries("error", record.request_id, after, stream.PAGE)
    end)
  end), api.errors)

  service:get("/servicex/transformation/:request_id/cancel", own_request(function(_, _, _, record)
    local request_id = record.request_id
    local canceled = store.change(request_id, depot.now(), false, function(stored, helpers)
      if store.TERMINAL[stored.status] then return false end
      helpers.finish("Canceled")
    end)
    if not canceled then
      return 400, { message = string.format("Transform request with id %s is not in progress.", request_id) }
    end
    log.info("Transformation request canceled", { transformation = request_id })
    return { message = "Canceled transformation request " .. request_id }
  end), api.cancel)
end

return M
