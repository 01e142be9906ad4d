-- A stand-in for KBase's auth service (token introspection), served by Depot in the tests: the
-- four fixture tokens of the original test rig, and a count of the calls it answered.
local service = ...
local calls = 0

local function error_body(httpcode, status, appcode, message)
  return { error = { httpcode = httpcode, httpstatus = status, appcode = appcode, apperror = status,
                     message = message, callid = "1234", time = 1542737889450 } }
end

local tokens = {
  non_admin_token = { type = "Login", id = "xyz-abc-123", expires = 1543258545316, created = 1542653745316,
                      name = "token_name", user = "username", custom = {}, cachefor = 300000 },
  non_admin_token2 = { type = "Login", id = "xyz-abc-123-456", expires = 1543258545316, created = 1542653745316,
                       name = "token_name2", user = "username2", custom = {}, cachefor = 300000 },
}

service:get("/api/V2/token", function(req)
  calls = calls + 1
  local token = req:header("Authorization")
  if token == nil or token == "" then
    return 400, error_body(400, "Bad Request", 10010, "10010 No authentication token: No user token provided")
  end
  local answer = tokens[token]
  if answer then return answer end
  return 401, error_body(401, "Unauthorized", 10020, "10020 Invalid token")
end)

service:get("/api/V2/calls", function() return { calls = calls } end)
