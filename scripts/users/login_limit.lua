-- Attempt limits of the password routes, whose argon2 work (~100 ms and 64 MiB on the thread pool
-- every fs call shares) is what a flood would buy. POST /login: after `max_per_account` attempts
-- for one e-mail, or `max_per_address` from one client address, within `window` seconds,
-- logins from there are refused (429) until the window that began with the first attempt ends.
-- POST /registration: at most `max_registrations` password hashes per client address per window.
-- An attempt is counted *before* its hash runs, in the same transaction that checks the limit:
-- parallel guesses cannot all pass a check that none of them has counted in yet. Attempts that
-- turn out not to be failures (a success, a pending account) are given back. Counters live in kv
-- (shared by all workers); a batched handle, since losing the last ~100 ms of counts in a crash
-- is harmless.
local kv = require "kv"
local depot = require "depot"

local M = {}
M.__index = M

local db = kv.open("users_login_failures", { durable = false })

-- options: max_per_account, max_per_address, max_registrations, window (seconds).
function M.new(options)
  return setmetatable({
    max_per_account = options.max_per_account, max_per_address = options.max_per_address,
    max_registrations = options.max_registrations, window = options.window,
  }, M)
end

local function account_key(email) return "account:" .. email:lower() end
local function address_key(address) return "address:" .. (address or "") end
local function registration_key(address) return "registration:" .. (address or "") end

-- The attempts recorded in `value` within the window, and when that window began.
local function current(self, value, now)
  if type(value) ~= "table" or value.since + self.window <= now then return 0, now end
  return value.count, value.since
end

-- Counts one attempt under each key of `limits` (key → limit) unless one of them is at its limit
-- already: then nothing is counted and the seconds until all of them allow one are returned.
local function take(self, limits)
  local now = depot.now()
  return db:update(function(tx)
    local wait, counts = 0, {}
    for key, limit in pairs(limits) do
      local count, since = current(self, tx:get(key), now)
      if count >= limit then wait = math.max(wait, since + self.window - now) end
      counts[key] = { count = count + 1, since = since }
    end
    if wait > 0 then return math.max(1, math.ceil(wait)) end
    for key, value in pairs(counts) do tx:put(key, value) end
    return nil
  end)
end

-- nil when a login for `email` from `address` may be tried (and is counted); else the seconds
-- until it may.
function M:login(email, address)
  return take(self, { [account_key(email)] = self.max_per_account, [address_key(address)] = self.max_per_address })
end

-- nil when a registration from `address` may hash its password (and is counted); else the
-- seconds until it may.
function M:registration(address)
  return take(self, { [registration_key(address)] = self.max_registrations })
end

-- Takes one attempt back from `key` in `tx` (forgets the count when `clear`).
local function give_back(self, tx, key, now, clear)
  local value = tx:get(key)
  local count = current(self, value, now)
  if clear or count <= 1 then
    tx:delete(key)
  else
    tx:put(key, { count = count - 1, since = value.since })
  end
end

-- A counted login that was no failure: a pending account's.
function M:not_failed(email, address)
  local now = depot.now()
  db:update(function(tx)
    give_back(self, tx, account_key(email), now)
    give_back(self, tx, address_key(address), now)
  end)
end

-- A successful login: the account's failures are forgotten, the address's attempt given back.
function M:succeeded(email, address)
  local now = depot.now()
  db:update(function(tx)
    give_back(self, tx, account_key(email), now, true)
    give_back(self, tx, address_key(address), now)
  end)
end

return M
