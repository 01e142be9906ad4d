-- Who is calling: the Authorization header, forwarded unchanged to the KBase auth service's token
-- introspection (GET <auth_url>/api/V2/token), gives the user; token_id = auth_url .. ":" .. user.
-- Answers are cached per token for the `cachefor` milliseconds the auth service grants (invalid
-- tokens for 10 s), in a bounded per-worker table. Tokens are never logged.
local http = require "http"
local json = require "json"
local depot = require "depot"
local log = require "log"

local M = {}
M.__index = M

local INVALID_TOKEN_SECONDS = 10
local MAX_CACHED_TOKENS = 10000

function M.new(auth_url)
  return setmetatable({ url = auth_url, cache = {}, cached = 0 }, M)
end

function M:remember(token, entry, seconds)
  if self.cached >= MAX_CACHED_TOKENS then self.cache, self.cached = {}, 0 end
  entry.until_time = depot.monotonic() + seconds
  if not self.cache[token] then self.cached = self.cached + 1 end
  self.cache[token] = entry
end

-- The caller's token_id, or the request fails (400 no header, 403 bad token, 500 auth outage).
function M:token_id(req)
  local token = req:header("Authorization")
  if token == nil or token == "" then depot.fail(400, "Missing header: Authorization") end
  local cached = self.cache[token]
  if cached and cached.until_time > depot.monotonic() then
    if cached.error then depot.fail(403, cached.error) end
    return cached.token_id
  end
  local response, err = http.get(self.url .. "/api/V2/token", { headers = { Authorization = token }, timeout = 10 })
  if not response then
    log.error("auth service unreachable", { error = err })
    depot.fail(500, "Unexpected server error")
  end
  local answer = json.decode(response.body)
  if type(answer) ~= "table" then
    log.error("auth service answered something other than JSON", { status = response.status })
    depot.fail(500, "Unexpected server error")
  end
  if answer.error ~= nil then
    local message = type(answer.error) == "table" and answer.error.message or tostring(answer.error)
    self:remember(token, { error = message }, INVALID_TOKEN_SECONDS)
    depot.fail(403, message)
  end
  if type(answer.user) ~= "string" then depot.fail(500, "Unexpected server error") end
  local token_id = self.url .. ":" .. answer.user
  local seconds = (tonumber(answer.cachefor) or 0) / 1000
  if seconds > 0 then self:remember(token, { token_id = token_id }, seconds) end
  return token_id
end

return M
