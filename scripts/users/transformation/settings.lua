-- The transformation API's settings, read once per script generation with the original's names
-- (specs/users.md §4.1): images, DID schemes, the object store, and the worker protocol's token
-- and lease. Raises a config error (the users service stays unmounted) on a malformed value.
local json = require "json"

local M = {}

-- VALID_DID_SCHEMES is a JSON list in the original ('["rucio", "cernopendata"]'); a config
-- section may give a real list, and a plain "a,b" is accepted too.
local function schemes(config)
  local raw = config.string("VALID_DID_SCHEMES", "")
  if raw == "" then return config.list("VALID_DID_SCHEMES", { "rucio" }) end
  if raw:match("^%s*%[") then
    local list = json.decode(raw)
    if type(list) ~= "table" then error("config: users: VALID_DID_SCHEMES must be a JSON list of strings", 0) end
    return list
  end
  return config.list("VALID_DID_SCHEMES")
end

local function as_set(list)
  local set = {}
  for _, item in ipairs(list) do set[tostring(item)] = true end
  return set
end

-- `config`: the users service's config getters.
function M.read(config)
  local object_store = config.boolean("OBJECT_STORE_ENABLED", false)
  return {
    default_image = config.string("TRANSFORMER_DEFAULT_IMAGE", ""),
    validate_image = config.boolean("TRANSFORMER_VALIDATE_DOCKER_IMAGE", true),
    docker_repo_url = config.string("TRANSFORMER_DOCKER_REPO_URL", "https://hub.docker.com"):gsub("/$", ""),
    default_scheme = config.string("DID_FINDER_DEFAULT_SCHEME", "rucio"),
    valid_schemes = as_set(schemes(config)),
    code_gen_image = config.string("CODE_GEN_IMAGE", ""),
    app_version = config.string("APP_VERSION", "develop"),
    advertised_hostname = config.string("ADVERTISED_HOSTNAME", ""),
    -- Only the endpoint and whether it is TLS ever leave the server; the keys stay here for the
    -- workers' own configuration and are never part of an answer or a log line.
    object_store = object_store and {
      endpoint = config.string("MINIO_PUBLIC_URL", config.string("MINIO_URL", "")),
      secured = config.boolean("MINIO_SECURED", false),
    } or nil,
    worker_token = config.string("SERVICEX_WORKER_TOKEN", ""),
    lease_seconds = config.number("SERVICEX_WORKER_LEASE_SECONDS", 60),
    max_leases = config.integer("SERVICEX_WORKER_MAX_LEASES", 5),
    max_pending = config.integer("SERVICEX_MAX_PENDING_REQUESTS", 10000),
  }
end

return M
