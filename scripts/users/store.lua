-- The users of the ServiceX user service in kv: one record per user under "user:<id>", and two
-- indexes ("email:<lower-cased email>" and "sub:<sub>" → id) that every write keeps consistent
-- with the records in the same transaction. Shared by the service, its policy and its commands.
local kv = require "kv"
local crypto = require "crypto"
local depot = require "depot"

local M = {}

-- The longest e-mail a user may have (the original's column, specs/users.md §4.2).
M.MAX_EMAIL = 320
-- kv's longest key (docs/lua-api.md#kv): a longer one names nothing stored.
local MAX_KEY = 511
-- Users deleted per write transaction by M.delete_where: short enough that other writers,
-- which wait for it, hardly notice.
local DELETE_BATCH = 200

local db = kv.open("users")

-- Fixed-width ids keep the records in id order in the database.
local function record_key(id) return string.format("user:%012d", id) end
local function email_key(email) return "email:" .. email:lower() end
local function sub_key(sub) return "sub:" .. sub end

local function by_index(key)
  if #key > MAX_KEY then return nil end
  local id = db:get(key)
  return id and db:get(record_key(id)) or nil
end

function M.by_email(email) return by_index(email_key(email)) end
function M.by_sub(sub) return by_index(sub_key(sub)) end
function M.by_id(id) return db:get(record_key(id)) end

-- The users among the next `limit` records in id order after the record key `after` (nil: from
-- the start) for which `keep(user)` is true (all without it), and the key to go on from (nil at
-- the end).
function M.page(after, limit, keep)
  local items = db:iter({ prefix = "user:", from = after and after .. "\0" or nil, limit = limit })
  local users = {}
  for _, item in ipairs(items) do
    if not keep or keep(item.value) then users[#users + 1] = item.value end
  end
  return users, #items == limit and items[#items].key or nil
end

local function remove_in(tx, user)
  tx:delete(record_key(user.id))
  tx:delete(email_key(user.email))
  tx:delete(sub_key(user.sub))
end

-- Creates the user from `fields` (email and sub required); nil, "exists" if the email or the sub
-- is taken. Returns the stored record with its new id.
function M.create(fields)
  return db:update(function(tx)
    if tx:exists(email_key(fields.email)) or tx:exists(sub_key(fields.sub)) then return nil, "exists" end
    local user = {}
    for name, value in pairs(fields) do user[name] = value end
    user.id = (tx:get("next_id") or 1)
    user.created_at = user.created_at or depot.now()
    user.updated_at = user.created_at
    tx:put("next_id", user.id + 1)
    tx:put(record_key(user.id), user)
    tx:put(email_key(user.email), user.id)
    tx:put(sub_key(user.sub), user.id)
    return user
  end)
end

-- Applies `change(user)` to the stored user `id` in one transaction (re-indexing a changed
-- email); returns the new record, or nil if there is no such user (nil, "exists" if the new
-- e-mail is another user's: nothing is written).
function M.change(id, change)
  return db:update(function(tx)
    local user = tx:get(record_key(id))
    if not user then return nil end
    local old_email = user.email
    change(user)
    user.updated_at = depot.now()
    if old_email:lower() ~= user.email:lower() then
      if tx:exists(email_key(user.email)) then return nil, "exists" end
      tx:delete(email_key(old_email))
      tx:put(email_key(user.email), user.id)
    end
    tx:put(record_key(id), user)
    return user
  end)
end

-- Deletes the user `id`; whether there was one.
function M.delete(id)
  return db:update(function(tx)
    local user = tx:get(record_key(id))
    if not user then return false end
    remove_in(tx, user)
    return true
  end)
end

-- Deletes every user for which `doomed(user)` is true; how many. A transaction per batch of
-- records, with a pause between batches so the worker serves other requests meanwhile: a user
-- registered during the call may or may not be deleted. Only inside a request (it waits).
function M.delete_where(doomed)
  local count, after = 0, nil
  repeat
    local deleted
    deleted, after = db:update(function(tx)
      local items = tx:iter({ prefix = "user:", from = after and after .. "\0" or nil, limit = DELETE_BATCH })
      local n = 0
      for _, item in ipairs(items) do
        if doomed(item.value) then
          remove_in(tx, item.value)
          n = n + 1
        end
      end
      return n, #items == DELETE_BATCH and items[#items].key or nil
    end)
    count = count + deleted
    if after then depot.sleep(0) end
  until not after
  return count
end

-- Gives the user `id` the provider identity `sub` (its JWT identity from now on) and records the
-- provider `issuer`; returns the new record, or nil if there is no such user or the sub is taken.
function M.set_identity(id, sub, issuer)
  return db:update(function(tx)
    local user = tx:get(record_key(id))
    if not user or tx:exists(sub_key(sub)) then return nil end
    tx:delete(sub_key(user.sub))
    user.sub, user.identity_provider, user.updated_at = sub, issuer, depot.now()
    tx:put(record_key(id), user)
    tx:put(sub_key(sub), id)
    return user
  end)
end

-- A secret of a deployment that configured none (`name`: "generated_secret" signs the tokens,
-- "generated_session_secret" the web sessions): made by the first caller, then the same for
-- every worker and every restart.
function M.generated_secret(name)
  name = name or "generated_secret"
  return db:update(function(tx)
    local secret = tx:get(name)
    if not secret then
      secret = crypto.token(32)
      tx:put(name, secret)
    end
    return secret
  end)
end

-- The token secret versions before users/secret.lua kept here (nil when there is none); forgotten
-- once that file holds it.
function M.legacy_secret() return db:get("generated_secret") end
function M.forget_legacy_secret() db:delete("generated_secret") end

return M
