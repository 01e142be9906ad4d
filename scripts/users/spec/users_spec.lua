-- The users service's main flow over real HTTP: a sign-up (its Slack notification lands in the
-- notify sink, tests/stubs/notify_sink), the admin's approval (the welcome mail), a login, token
-- refresh, and the ServiceX policy (users/policy.lua): admin-only routes refuse a plain user, in
-- the service and in front of another one (hello, with "auth": "users" and its own rules).
-- Run with `depot test scripts/users` (docs/lua-api.md, depot.spec).
local spec = require "depot.spec"

local ADMIN, PASSWORD = "admin@example.org", "admin-password"

describe("users", function()
  local sink, server

  lazy_setup(function()
    sink = spec.upstream("notify_sink")
    server = spec.start({ services = {
      { name = "users", mount = { "/servicex" }, config = {
        ENABLE_AUTH = "true", JWT_SECRET_KEY = "spec-secret", JWT_ADMIN = ADMIN, JWT_ADMIN_PASSWORD = PASSWORD,
        SIGNUP_WEBHOOK_URL = sink.url .. "/in/signup", MAILGUN_API_URL = sink.url .. "/in/mailgun",
        MAILGUN_DOMAIN = "spec.example", MAILGUN_API_KEY = "spec-mailgun-key", MAIL_BACKOFF = 0.1,
        PASSWORD_HASH_OPS = 1, PASSWORD_HASH_MEM = 8192,  -- the minimum: hashing is not under test
        SERVICEX_WORKER_TOKEN = "spec-worker-token",
      } },
      { name = "hello", mount = { "/" }, config = {
        auth = "users", ENABLE_AUTH = "true", JWT_SECRET_KEY = "spec-secret",
        auth_rules = { ["GET /health"] = "none", ["GET /hello"] = "admin" },
      } },
    } })
  end)

  lazy_teardown(function()
    server:stop()
    sink:stop()
  end)

  local function login(email, password)
    return server:post("/servicex/login", { json = { email = email, password = password } })
  end

  local function bearer(token) return { Authorization = "Bearer " .. token } end

  local function admin_token()
    local res = login(ADMIN, PASSWORD)
    assert.equals(200, res.status)
    return res:json().access_token
  end

  it("signs a user up, pending until the admin accepts", function()
    local email = "bo@example.org"
    local signup = server:post("/servicex/registration", { json = {
      full_name = "Bo", email = email, password = "pw", confirm_password = "pw" } })
    assert.equals(200, signup.status)
    assert.equals("User " .. email .. " added to pending user list", signup:json().message)
    assert.equals(401, login(email, "pw").status)
    spec.wait_for(function() return #sink:get("/out/signup"):json().requests == 1 end)

    local admin = bearer(admin_token())
    local pending = server:get("/servicex/pending", { headers = admin }):json().users
    assert.same({ email }, { pending[1].email })
    local accepted = server:post("/servicex/accept", { headers = admin, json = { email = email } })
    assert.equals(200, accepted.status)
    spec.wait_for(function() return #sink:get("/out/mailgun/spec.example/messages"):json().requests == 1 end)

    local tokens = login(email, "pw")
    assert.equals(200, tokens.status)
    assert.is_string(tokens:json().access_token)
  end)

  it("refreshes an access token with the refresh token", function()
    local refresh_token = login(ADMIN, PASSWORD):json().refresh_token
    local res = server:post("/servicex/token/refresh", { headers = bearer(refresh_token) })
    assert.equals(200, res.status)
    assert.is_string(res:json().access_token)
  end)

  it("keeps admin routes from users who are not admins", function()
    local email = "cy@example.org"
    server:post("/servicex/registration", { json = { full_name = "Cy", email = email, password = "pw", confirm_password = "pw" } })
    server:post("/servicex/accept", { headers = bearer(admin_token()), json = { email = email } })
    local token = login(email, "pw"):json().access_token
    local res = server:get("/servicex/users", { headers = bearer(token) })
    assert.equals(401, res.status)
    assert.equals("Not Authorized: This resource is restricted to administrators.", res:json().message)
    assert.equals(401, server:get("/servicex/users").status)
  end)

  it("guards another service by its rules: open, admins only", function()
    assert.equals(200, server:get("/health").status)
    assert.equals(401, server:get("/hello").status)
    local email = "di@example.org"
    server:post("/servicex/registration", { json = { full_name = "Di", email = email, password = "pw", confirm_password = "pw" } })
    server:post("/servicex/accept", { headers = bearer(admin_token()), json = { email = email } })
    assert.equals(401, server:get("/hello", { headers = bearer(login(email, "pw"):json().access_token) }).status)
    local res = server:get("/hello", { headers = bearer(admin_token()) })
    assert.equals(200, res.status)
    assert.equals("hello\n", res.body)
  end)

  it("refuses a wrong password", function()
    local res = login(ADMIN, "not-the-password")
    assert.equals(401, res.status)
    assert.equals("Wrong credentials", res:json().message)
  end)
end)
