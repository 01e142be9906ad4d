-- The schema vocabulary of route documentation: small constructors that build JSON Schema
-- (2020-12, the dialect of OpenAPI 3.1) as plain tables, so a document needs no translation and
-- json.encode writes them as they are. Misspelt options are refused at load, not shown wrong.
local json = require "json"

local M = {}

-- Option names a constructor accepts → the JSON Schema keyword they become.
local KEYWORDS = {
  title = "title", description = "description", default = "default", examples = "examples",
  enum = "enum", const = "const", format = "format", pattern = "pattern",
  minimum = "minimum", maximum = "maximum", exclusive_minimum = "exclusiveMinimum",
  min_length = "minLength", max_length = "maxLength", min_items = "minItems", max_items = "maxItems",
  deprecated = "deprecated", media_type = "contentMediaType",
}
local LISTS = { enum = true, examples = true }

local function array(list) return setmetatable(list, json.array_mt) end

-- A new schema {type = kind} with `options` turned into keywords; `what` names the caller.
local function build(what, kind, options)
  local schema = { type = kind }
  for name, value in pairs(options or {}) do
    local keyword = KEYWORDS[name]
    if not keyword then error("schema." .. what .. ": unknown option '" .. tostring(name) .. "'", 3) end
    if LISTS[name] then
      if type(value) ~= "table" then error("schema." .. what .. ": " .. name .. " must be a list", 3) end
      local copy = {}
      for i, item in ipairs(value) do copy[i] = item end
      value = array(copy)
    end
    schema[keyword] = value
  end
  return schema
end

function M.string(options) return build("string", "string", options) end
function M.integer(options) return build("integer", "integer", options) end
function M.number(options) return build("number", "number", options) end
function M.boolean(options) return build("boolean", "boolean", options) end
function M.null(options) return build("null", "null", options) end

-- Bytes that are not JSON: a file part, a download, an image (`media_type` names their type).
function M.binary(options)
  local schema = build("binary", "string", options)
  schema.format = schema.format or "binary"
  return schema
end

-- Any value (described only): what a service passes through from elsewhere.
function M.any(options)
  local schema = build("any", nil, options)
  return next(schema) and schema or setmetatable(schema, json.object_mt)
end

function M.array(items, options)
  assert(type(items) == "table", "schema.array: items must be a schema")
  local schema = build("array", "array", options)
  schema.items = items
  return schema
end

-- Marks an object field or a parameter as required: schema.object{ email = required(string()) }.
local Required = {}
function M.required(schema)
  assert(type(schema) == "table", "schema.required: argument must be a schema")
  return setmetatable({ schema = schema }, Required)
end

-- The schema and whether it was marked required.
function M.unwrap(value)
  if getmetatable(value) == Required then return value.schema, true end
  return value, false
end

-- An object with these fields (name → schema; required(schema) for a required one).
-- options.additional: false (no other fields) or the schema of other fields' values.
function M.object(fields, options)
  options = options or {}
  local additional = options.additional
  local rest = {}
  for name, value in pairs(options) do
    if name ~= "additional" then rest[name] = value end
  end
  local schema = build("object", "object", rest)
  local properties, required = {}, {}
  for name, value in pairs(fields or {}) do
    local field, is_required = M.unwrap(value)
    properties[name] = field
    if is_required then required[#required + 1] = name end
  end
  table.sort(required)
  schema.properties = setmetatable(properties, json.object_mt)
  if #required > 0 then schema.required = array(required) end
  if additional ~= nil then schema.additionalProperties = additional end
  return schema
end

-- An object whose keys are free and whose values all have `values`' schema.
function M.map(values, options)
  local schema = build("map", "object", options)
  schema.additionalProperties = values
  return schema
end

local function combination(keyword)
  return function(list, options)
    assert(type(list) == "table" and #list > 0, "schema." .. keyword .. ": needs a list of schemas")
    local schema = build(keyword, nil, options)
    local copy = {}
    for i, item in ipairs(list) do copy[i] = item end
    schema[keyword] = array(copy)
    return schema
  end
end
M.one_of = combination("oneOf")
M.any_of = combination("anyOf")

-- `schema` or JSON null.
function M.nullable(schema, options)
  return M.any_of({ schema, { type = "null" } }, options)
end

return M
