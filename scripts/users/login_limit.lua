-- Failed-login counting for POST /login: after `max_per_account` failures for one e-mail, or
-- `max_per_address` from one client address, within `window` seconds, logins from there are
-- refused (429) until the window that began with the first failure ends. Counters live in kv
-- (shared by all workers); a batched handle, since losing the last ~100 ms of counts in a crash
-- is harmless.
local kv = require "kv"
local depot = require "depot"

local M = {}
M.__index = M

local db = kv.open("users_login_failures", { durable = false })

function M.new(options)
  return setmetatable({
    max_per_account = options.max_per_account, max_per_address = options.max_per_address,
    window = options.window,
  }, M)
end

local function keys(email, address) return "account:" .. email:lower(), "address:" .. (address or "") end

-- The failures recorded under `key` within the window, and the time that window ends.
local function current(self, value, now)
  if type(value) ~= "table" or value.since + self.window <= now then return 0, now + self.window end
  return value.count, value.since + self.window
end

-- nil if a login for `email` from `address` may be tried; else the seconds until it may.
function M:blocked(email, address)
  local now = depot.now()
  local account, client = keys(email, address)
  local wait = 0
  for key, limit in pairs({ [account] = self.max_per_account, [client] = self.max_per_address }) do
    local count, ends = current(self, db:get(key), now)
    if count >= limit then wait = math.max(wait, ends - now) end
  end
  return wait > 0 and math.ceil(wait) or nil
end

-- Counts one failed login for `email` from `address`.
function M:failed(email, address)
  local now = depot.now()
  db:update(function(tx)
    for _, key in ipairs({ keys(email, address) }) do
      local value = tx:get(key)
      local count = current(self, value, now)
      tx:put(key, { count = count + 1, since = count == 0 and now or value.since })
    end
  end)
end

-- Forgets the account's failures after a successful login (the address's stay counted).
function M:succeeded(email) db:delete((keys(email))) end

return M
