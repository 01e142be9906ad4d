-- The staging service's settings, under the original's names (environment, ./.env, then the
-- service's config section; bindings/config.lua), with defaults that work on a fresh machine:
-- the source and target storages live under the data dir and are created when the script loads.
local depot = require "depot"
local fs = require "fs"
local json = require "json"

local M = {}

-- Raised like bindings/config.lua's errors, so that a bad setting leaves only this service
-- unmounted (the log says why) instead of failing the whole reload.
local function config_error(message)
  error(setmetatable({ config_error = true, message = "config: staging: " .. message },
    { __tostring = function(e) return e.message end }), 0)
end

M.ALL_METHODS = { "local_copy", "local_symlink", "direct_download", "jupyter_copy" }

-- ALLOWED_METHODS is a JSON list in the original ('["local_copy", "local_symlink"]'); a config
-- section may give a real array, and a comma-separated list is accepted too.
local function method_list(settings)
  if not settings.has("ALLOWED_METHODS") then return M.ALL_METHODS end
  local is_text, text = pcall(settings.string, "ALLOWED_METHODS")
  local value
  if not is_text then
    value = settings.list("ALLOWED_METHODS")  -- an array in the config section
  elseif text:match("^%s*%[") then
    value = json.decode(text)
  else
    value = settings.list("ALLOWED_METHODS")
  end
  local methods = setmetatable({}, json.array_mt)
  for _, name in ipairs(type(value) == "table" and value or { false }) do
    if type(name) ~= "string" then
      config_error("ALLOWED_METHODS must be a JSON list of method names")
    end
    methods[#methods + 1] = name
  end
  return methods
end

-- A directory setting as an absolute path without a trailing slash (relative: under the data dir).
local function directory(settings, name, default)
  local path = settings.string(name, default)
  if path:sub(1, 1) ~= "/" then path = depot.data_dir .. "/" .. path end
  path = path:gsub("/+$", "")
  return path == "" and "/" or path
end

function M.load(service)
  local settings = require("config").of(service)
  local loaded = {
    source = directory(settings, "SOURCE_STORAGE_PATH", "staging/storage_a"),
    target = directory(settings, "TARGET_STORAGE_PATH", "staging/user_areas"),
    allowed_methods = method_list(settings),
    logging_level = settings.string("LOGGING_LEVEL", "INFO"):upper(),
    hub_url = settings.string("JUPYTERHUB_URL", "http://localhost:8080"):gsub("/+$", ""),
    -- The hub admin token: sent to the hub only, never shown by /config/ nor logged.
    hub_token = settings.string("JUPYTERHUB_API_TOKEN", ""),
    hub_timeout = settings.number("JUPYTERHUB_TIMEOUT", 30),
    spawn_timeout = settings.number("JUPYTERHUB_SPAWN_TIMEOUT", 300),
    jupyter_max_bytes = settings.integer("JUPYTER_MAX_FILE_BYTES", 64 * 1024 * 1024),
    progress_threshold = settings.integer("PROGRESS_THRESHOLD_BYTES", 64 * 1024 * 1024),
    progress_interval = settings.number("PROGRESS_INTERVAL", 0.5),
    max_tree_entries = settings.integer("MAX_TREE_ENTRIES", 200000),
    copy_lanes = math.max(1, settings.integer("COPY_LANES", 16)),
    records_max = settings.integer("RECORDS_MAX", 10000),
    log_max_lines = settings.integer("LOG_MAX_LINES", 5000),
    create_file_max_bytes = settings.integer("CREATE_FILE_MAX_BYTES", 16 * 1024 * 1024),
  }
  for _, path in ipairs({ loaded.source, loaded.target }) do
    local ok, err = fs.mkdir(path)
    if not ok then config_error("cannot create " .. path .. ": " .. err) end
  end
  return loaded
end

return M
