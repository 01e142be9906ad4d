-- A stand-in for KBase's auth service (token introspection, GET /api/V2/token), served by Depot
-- in the tests and the bench: the fixtures of the original test rig's mock (src/test/mock_auth),
-- which answered any other token, or none, with the "no token" error. GET /calls counts the
-- introspections answered, over all workers, so tests can see the file cache's auth caching.
local kv = require "kv"
local service = ...

local counter = kv.open("kbase_auth_stub", { durable = false })

local function user(id, name)
  return { type = "Developer", id = id, expires = 1556479867969, created = 1548703867969, name = "token_name",
           user = name, custom = {}, cachefor = 300000 }
end

local function auth_error(httpcode, httpstatus, appcode, apperror, callid, time)
  return { error = { httpcode = httpcode, httpstatus = httpstatus, appcode = appcode, apperror = apperror,
                     message = appcode .. " " .. apperror, callid = callid, time = time } }
end

local fixtures = {
  non_admin_token = { 200, user("xyz-abc-123", "username") },
  non_admin_token2 = { 200, user("xyz-abc-123-456", "username2") },
  invalid_token = { 401, auth_error(401, "Unauthorized", 10020, "Invalid token", "1757210147564211",
                                    1542737889450) },
}
local no_token = { 400, auth_error(400, "Bad Request", 10010, "No authentication token: No user token provided",
                                   "7334881776774415", 1542737656377) }

service:get("/api/V2/token", function(req)
  counter:update(function(tx) tx:put("calls", (tx:get("calls") or 0) + 1) end)
  local fixture = fixtures[req:header("Authorization") or ""] or no_token
  return fixture[1], fixture[2]
end)

service:get("/calls", function() return { calls = counter:get("calls") or 0 } end)
