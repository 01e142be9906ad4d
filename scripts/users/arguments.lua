-- Request arguments as Flask-RESTful's reqparse finds them (location ('json', 'values')): from a
-- JSON body first, then the query string, then a form body (urlencoded or multipart); missing
-- required ones answer 400 {"message": {"<name>": "This field cannot be blank"}}, over-long ones
-- 400 {"message": {"<name>": "Field cannot be longer than <n> characters."}}.
local json = require "json"

local M = {}

local BLANK = "This field cannot be blank"

local function url_decode(text)
  text = text:gsub("+", " ")
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- The first value of each name of an urlencoded form.
function M.urlencoded(body)
  local values = {}
  for pair in body:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    name = url_decode(name)
    if values[name] == nil then values[name] = url_decode(value) end
  end
  return values
end

local function media_type(req)
  local value = req:header("Content-Type")
  return value and (value:match("^%s*([^;%s]+)") or ""):lower() or ""
end

-- Python's str() of a JSON scalar, as reqparse's type=str makes it.
local function as_text(value)
  if type(value) == "string" then return value end
  if value == true then return "True" elseif value == false then return "False" end
  if type(value) == "number" then return value == math.floor(value) and string.format("%d", value) or tostring(value) end
  return nil
end

-- `specs`: a list of { name, required = bool, max = bytes }. Returns the arguments by name
-- (strings), or nil, 400, body for a malformed JSON body, a missing or blank required argument or
-- one longer than its max.
function M.parse(req, specs)
  local sources = {}
  local media = media_type(req)
  if media == "application/json" or media:match("^application/.+%+json$") then
    local text = req:body()
    if text ~= "" then
      local body, err = json.decode(text)
      if body == nil then return nil, 400, { message = "Failed to decode JSON object: " .. err } end
      if type(body) == "table" and getmetatable(body) == json.object_mt then sources[#sources + 1] = body end
    end
  end
  sources[#sources + 1] = req.query or {}
  if media == "application/x-www-form-urlencoded" then
    sources[#sources + 1] = M.urlencoded(req:body())
  elseif media == "multipart/form-data" then
    local form = {}
    for part in req:parts() do
      if part.filename == nil and form[part.name] == nil then form[part.name] = part:text() end
    end
    sources[#sources + 1] = form
  end
  local args = {}
  for _, spec in ipairs(specs) do
    local name = spec[1]
    for _, source in ipairs(sources) do
      local value = as_text(source[name])
      if value ~= nil then
        args[name] = value
        break
      end
    end
    if spec.required and (args[name] == nil or args[name]:match("^%s*$")) then
      return nil, 400, { message = { [name] = BLANK } }
    end
    if spec.max and args[name] and #args[name] > spec.max then
      return nil, 400, { message = { [name] = string.format("Field cannot be longer than %d characters.", spec.max) } }
    end
  end
  return args
end

return M
