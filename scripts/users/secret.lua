-- The key that signs the users service's tokens: JWT_SECRET_KEY when it is set; otherwise one
-- generated on the first start and kept in <data dir>/users/jwt_secret_key (mode 0600: Depot's
-- own user alone reads it; it is never logged), so that a fresh machine needs no setting and
-- tokens outlive restarts. Every service that checks these tokens (the users policy in front of
-- another service, the file cache without KBASE_AUTH_URL) gets the same key from here.
local crypto = require "crypto"
local depot = require "depot"
local fs = require "fs"
local log = require "log"
local store = require "users.store"

local M = {}

M.FILE = "users/jwt_secret_key"

-- Workers load the scripts at the same time: each writes a candidate under its own name and
-- links it to the one name, which succeeds once; every worker then reads the winner.
local function generate(path)
  assert(fs.mkdir(depot.data_dir .. "/users", "0700"))
  local candidate = string.format("%s.%s", path, crypto.hex(crypto.random_bytes(8)))
  -- A secret an earlier version kept in kv (world-readable pages) keeps the tokens it signed valid.
  local legacy = store.legacy_secret()
  assert(fs.write(candidate, legacy or crypto.token(32), { mode = "0600", fsync = true }))
  if fs.link(candidate, path) then
    if legacy then store.forget_legacy_secret() end
    log.info(legacy and "moved the token signing key out of kv" or "generated the token signing key", { path = path })
  end
  fs.remove(candidate)
end

-- `settings`: the config getters of the service asking.
function M.key(settings)
  local configured = settings.string("JWT_SECRET_KEY", "")
  if configured ~= "" then return configured end
  local path = depot.data_dir .. "/" .. M.FILE
  local key = fs.read(path, 4096)
  if key then return key end
  generate(path)
  return assert(fs.read(path, 4096))
end

return M
