-- Who is calling: the Authorization header, forwarded unchanged to the KBase auth service's token
-- introspection (GET <auth_url>/api/V2/token), names the user; token_id = auth_url .. ":" .. user.
-- Answers are cached per token for the `cachefor` milliseconds the auth service grants (refused
-- tokens for 10 s) in a bounded per-worker table keyed by the token's digest, so a busy client
-- costs one auth call per worker and `cachefor`. Tokens are never logged.
local crypto = require "crypto"
local depot = require "depot"
local http = require "http"
local json = require "json"
local log = require "log"

local M = {}
M.__index = M

M.REFUSED_TOKEN_SECONDS = 10
M.MAX_CACHED_TOKENS = 10000
M.TIMEOUT_SECONDS = 10

function M.new(auth_url)
  return setmetatable({ url = auth_url, answers = {}, cached = 0, lookups = {} }, M)
end

local function unexpected(why, fields)
  log.error("auth service: " .. why, fields)
  depot.fail(500, "Unexpected server error")
end

function M:remember(key, answer, seconds)
  if seconds <= 0 then return end
  if not self.answers[key] then
    if self.cached >= M.MAX_CACHED_TOKENS then self:forget_expired() end
    if self.cached >= M.MAX_CACHED_TOKENS then self.answers, self.cached = {}, 0 end
    self.cached = self.cached + 1
  end
  answer.until_time = depot.monotonic() + seconds
  self.answers[key] = answer
end

function M:forget_expired()
  local now = depot.monotonic()
  for key, answer in pairs(self.answers) do
    if answer.until_time <= now then
      self.answers[key] = nil
      self.cached = self.cached - 1
    end
  end
end

-- What the auth service says about `token`: { token_id = ... } or { refused = message }.
function M:introspect(token)
  local response, err, kind = http.get(self.url .. "/api/V2/token",
    { headers = { Authorization = token }, timeout = M.TIMEOUT_SECONDS })
  if not response then unexpected("unreachable", { error = err, kind = kind }) end
  -- The original read the body as JSON whatever the status was.
  local answer = json.decode(response.body)
  if getmetatable(answer) ~= json.object_mt then
    unexpected("answered something other than a JSON object", { status = response.status })
  end
  if answer.error ~= nil then
    local message = type(answer.error) == "table" and answer.error.message
    if type(message) ~= "string" then unexpected("error without a message", { status = response.status }) end
    return { refused = message }, M.REFUSED_TOKEN_SECONDS
  end
  if type(answer.user) ~= "string" then unexpected("answer without a user", { status = response.status }) end
  return { token_id = self.url .. ":" .. answer.user }, (tonumber(answer.cachefor) or 0) / 1000
end

-- The cached answer for `token`, or a fresh one. Requests of one worker that need the same token
-- while its lookup runs wait for that lookup instead of sending their own.
function M:answer(token)
  local key = crypto.blake2b(token, { size = 32 })
  local answer = self.answers[key]
  if answer and answer.until_time > depot.monotonic() then return answer end
  local lookup = self.lookups[key]
  if lookup then
    depot.wait(lookup, M.TIMEOUT_SECONDS)
    answer = self.answers[key]
    if answer and answer.until_time > depot.monotonic() then return answer end
  end
  lookup = string.format("file_cache.auth.%d.%s", depot.worker_id, crypto.hex(key))
  self.lookups[key] = lookup
  local ok, seconds
  ok, answer, seconds = pcall(self.introspect, self, token)
  self.lookups[key] = nil
  depot.notify_local(lookup)
  if not ok then error(answer, 0) end
  self:remember(key, answer, seconds)
  return answer
end

-- The caller's token_id, or the request fails: 400 without the header, 403 with the auth
-- service's message for a refused token, 500 when the auth service is down or makes no sense.
function M:token_id(req)
  local token = req:header("Authorization")
  if token == nil or token == "" then depot.fail(400, "Missing header: Authorization") end
  local answer = self:answer(token)
  if answer.refused then depot.fail(403, answer.refused) end
  return answer.token_id
end

return M
