-- Lua module `config`: a service's settings from one place, with types, defaults and clear errors.
--
--   local config = require("config").of(service)
--   local url     = config.string("KBASE_AUTH_URL", "http://auth:5000")
--   local retries = config.integer("KENTIK_API_RETRIES", 3)
--   local email   = config.string("KT_AUTH_EMAIL")            -- no default: required
--
-- A setting NAME is looked up, first found wins: the environment variable NAME (the `depot`
-- binary applies ./.env to the environment at start, never overriding real variables), then
-- the service's config section key NAME, then its lower-case spelling (`kbase_auth_url`), then
-- the default. With no default and no value, the getter raises
-- "config: <service>: KT_AUTH_EMAIL is required (...)". Raised while the script loads, that
-- error does not fail the reload: the service is left unmounted and the log says why, while the
-- other services run.
-- A value of the wrong type raises "config: <service>: KENTIK_API_RETRIES must be an integer,
-- got 'three'". Callable anywhere (load time included); never waits.
-- The keys of a section that no getter ever asked for are what `depot check` and the server's
-- start warn about (config.unread): most often a misspelt setting.
local M = {}

-- section table → { [key] = true } for every key a getter looked up (weak: sections come and go
-- with their Lua state's services).
local read = setmetatable({}, { __mode = "k" })

local function lookup(section, name)
  local asked = read[section]
  if not asked then
    asked = {}
    read[section] = asked
  end
  asked[name], asked[name:lower()] = true, true
  local value = os.getenv(name)
  if value ~= nil and value ~= "" then return value, "environment variable " .. name end
  if section[name] ~= nil then return section[name], "config key " .. name end
  local lower = name:lower()
  if section[lower] ~= nil then return section[lower], "config key " .. lower end
  return nil
end

local converters = {
  string = function(value)
    if type(value) == "string" then return value end
    if type(value) == "number" then return tostring(value) end
    return nil -- not false: a table is "not a string", which the getter reports
  end,
  number = function(value) return tonumber(value) end,
  integer = function(value)
    local number = tonumber(value)
    return number and number == math.floor(number) and number or nil
  end,
  boolean = function(value)
    if type(value) == "boolean" then return value end
    local text = tostring(value):lower()
    if text == "true" or text == "1" or text == "yes" or text == "on" then return true end
    if text == "false" or text == "0" or text == "no" or text == "off" then return false end
    return nil
  end,
  table = function(value) return type(value) == "table" and value or nil end,
  list = function(value)
    if type(value) == "table" then return value end
    local items = {}
    for item in tostring(value):gmatch("[^,]+") do items[#items + 1] = item:match("^%s*(.-)%s*$") end
    return items
  end,
}

-- A configuration error: the engine leaves a service that raises one at load time unmounted.
local ConfigError = { __tostring = function(e) return e.message end }

local function fail(message) error(setmetatable({ config_error = true, message = message }, ConfigError), 3) end

local articles = { integer = "an integer", boolean = "a boolean", list = "a list", string = "a string", number = "a number", table = "an object" }

-- Returns the getters for `service` (or for a plain table of settings and a name).
function M.of(service, name)
  local section = (service and service.config) or service or {}
  local label = name or (service and service.name) or "config"
  local getters = {}
  for kind, convert in pairs(converters) do
    getters[kind] = function(setting, default)
      local raw, source = lookup(section, setting)
      if raw == nil then
        if default ~= nil then return default end
        fail(string.format("config: %s: %s is required (set the environment variable %s or services[].config.%s)",
          label, setting, setting, setting))
      end
      local value = convert(raw)
      if value == nil then
        fail(string.format("config: %s: %s must be %s, got '%s' (from %s)", label, setting, articles[kind],
          tostring(raw), source))
      end
      return value
    end
  end
  -- Whether a setting has a value anywhere (for optional features).
  getters.has = function(setting) return lookup(section, setting) ~= nil end
  return getters
end

-- Every key of `section` (a service's config table) that no getter looked up, sorted.
function M.unread(section)
  local asked = read[section] or {}
  local keys = {}
  for key in pairs(section) do
    if type(key) == "string" and not asked[key] then keys[#keys + 1] = key end
  end
  table.sort(keys)
  return keys
end

-- Raises one configuration error naming every setting of `names` that has no value, so that an
-- operator learns in one line what to set: "config: image_cache: set KT_AUTH_EMAIL and
-- KT_AUTH_TOKEN (environment variables or services[].config) to mount it".
function M.require_all(service, names)
  local section = (service and service.config) or {}
  local missing = {}
  for _, name in ipairs(names) do
    if lookup(section, name) == nil then missing[#missing + 1] = name end
  end
  if #missing == 0 then return end
  local list = #missing == 1 and missing[1]
    or table.concat(missing, ", ", 1, #missing - 1) .. " and " .. missing[#missing]
  fail(string.format("config: %s: set %s (environment variables or services[].config) to mount it",
    service and service.name or "config", list))
end

return M
