-- Request validation as FastAPI 0.103 with pydantic 2.10 reports it, so that clients of the
-- original see the same 422 bodies: {"detail": [{type, loc, msg, input, ctx?, url?}, ...]}.
-- Query errors come before body errors; a body that is not JSON stops everything at once
-- (FastAPI parses the body before it validates anything).
local json = require "json"

local M = {}

local URL = "https://errors.pydantic.dev/2.10/v/"

local function array(...) return setmetatable({ ... }, json.array_mt) end

local function missing(loc, input)
  return { type = "missing", loc = loc, msg = "Field required",
           input = input == nil and json.null or input, url = URL .. "missing" }
end

local function string_type(loc, input)
  return { type = "string_type", loc = loc, msg = "Input should be a valid string",
           input = input == nil and json.null or input, url = URL .. "string_type" }
end

local function model_type(loc, input, class_name)
  return { type = "model_type", loc = loc,
           msg = "Input should be a valid dictionary or instance of " .. class_name,
           input = input == nil and json.null or input, ctx = { class_name = class_name },
           url = URL .. "model_type" }
end

-- A marker for a body FastAPI kept as raw bytes (a Content-Type that is not JSON).
local RawBytes = {}

local function is_object(value)
  local meta = getmetatable(value)
  return type(value) == "table" and meta ~= json.array_mt and meta ~= RawBytes
end

-- FastAPI parses the body as JSON when there is no Content-Type, or an application/json or
-- application/*+json one; any other type leaves the bytes as they are.
local function parses_as_json(content_type)
  if content_type == nil or content_type == "" then return true end
  local main, sub = content_type:lower():match("^%s*([^/;%s]+)/([^;%s]+)")
  return main == "application" and (sub == "json" or sub:sub(-5) == "+json")
end

-- The request body as FastAPI sees it: nil (empty or JSON null), a decoded value, or
-- {raw = bytes} marked RawBytes. Returns nil, status, detail when it cannot be read: 422
-- json_invalid with the position and Python's reason, or FastAPI's 400 for a body that is not
-- text at all.
function M.body(req, limit)
  local text = req:body(limit)
  if text == "" then return nil end
  if not parses_as_json(req:header("Content-Type")) then
    return setmetatable({ raw = text }, RawBytes)
  end
  local value, err = json.decode(text)
  if value == nil and err then
    if err:find("Invalid UTF-8", 1, true) then
      return nil, 400, "There was an error parsing the body"
    end
    local position, reason = err:match("%(char (%d+)%): (.*)$")
    return nil, 422, { { type = "json_invalid", loc = array("body", tonumber(position) or 0),
                         msg = "JSON decode error", input = setmetatable({}, json.object_mt),
                         ctx = { error = reason or err } } }
  end
  if value == json.null then return nil end
  return value
end

-- How FastAPI shows a raw body in `input`: the bytes decoded as text.
local function shown(value)
  if getmetatable(value) == RawBytes then return value.raw end
  return value
end

-- Required query parameters (strings; FastAPI takes any value, the empty one included).
function M.query(req, names, errors)
  local values = {}
  for _, name in ipairs(names) do
    local value = req.query[name]
    if value == nil then
      errors[#errors + 1] = missing(array("query", name))
    else
      values[name] = value
    end
  end
  return values
end

-- The stage-data body, the model StagingRequest {data: DataItem {local_path_on_storage: str,
-- relative_path: str}} as the route's only body parameter (so its loc starts at "body").
function M.staging_request(body, errors)
  if body == nil then
    errors[#errors + 1] = missing(array("body"))
    return nil
  end
  if not is_object(body) then
    errors[#errors + 1] = model_type(array("body"), shown(body), "StagingRequest")
    return nil
  end
  local data = body.data
  if data == nil then
    errors[#errors + 1] = missing(array("body", "data"), body)
    return nil
  end
  if not is_object(data) then
    errors[#errors + 1] = model_type(array("body", "data"), data, "DataItem")
    return nil
  end
  local item = {}
  for _, field in ipairs({ "local_path_on_storage", "relative_path" }) do
    local value = data[field]
    if value == nil then
      errors[#errors + 1] = missing(array("body", "data", field), data)
    elseif type(value) ~= "string" then
      errors[#errors + 1] = string_type(array("body", "data", field), value)
    else
      item[field] = value
    end
  end
  return item
end

-- Embedded string body parameters (create-file's filename and content): each is looked up in
-- the body object; a body that is not an object, or a null member, counts as missing.
function M.embedded_strings(body, names, errors)
  local values = {}
  for _, name in ipairs(names) do
    local value = is_object(body) and body[name] or nil
    if value == nil or value == json.null then
      errors[#errors + 1] = missing(array("body", name))
    elseif type(value) ~= "string" then
      errors[#errors + 1] = string_type(array("body", name), value)
    else
      values[name] = value
    end
  end
  return values
end

return M
