-- The ServiceX user service (ssl-hep/ServiceX_App): users with password sign-up and login, the
-- JWT access/refresh tokens of flask-jwt-extended 3.x, the admin API, GET /servicex and the
-- transformation requests (transformation/), with the original's paths, statuses and messages
-- (specs/users.md §4). See docs/services/users.md.
local depot = require "depot"
local crypto = require "crypto"
local json = require "json"
local log = require "log"
local jwt = require "jwt"
local service = ...
local config = require("config").of(service)
local store = require "users.store"
local Policy = require "users.policy"
local LoginLimit = require "users.login_limit"
local arguments = require "users.arguments"
local slack = require "users.slack"
local Mail = require "users.mail"
local api = require "users.openapi"

local policy = Policy.new(config) -- without JWT_SECRET_KEY, a key generated once (users/secret.lua)
local access_lifetime = config.integer("JWT_ACCESS_TOKEN_EXPIRES", 21600)
-- False (the ServiceX template's value) makes refresh tokens without "exp".
local refresh_lifetime
do
  local never, off = pcall(config.boolean, "JWT_REFRESH_TOKEN_EXPIRES", false)
  if not (never and off == false) then refresh_lifetime = config.integer("JWT_REFRESH_TOKEN_EXPIRES") end
end
local admin_email = config.string("JWT_ADMIN", "")
local admin_password = config.string("JWT_ADMIN_PASSWORD", config.string("JWT_PASS", ""))
local hash_options = {
  ops = config.integer("PASSWORD_HASH_OPS", 2),
  mem = config.integer("PASSWORD_HASH_MEM", 67108864),
}
local login_limit = LoginLimit.new({
  max_per_account = config.integer("LOGIN_MAX_FAILURES", 5),
  max_per_address = config.integer("LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
  window = config.number("LOGIN_FAILURE_WINDOW", 300),
})
local versions = {
  ["app-version"] = config.string("APP_VERSION", "develop"),
  ["default-transformer"] = config.string("TRANSFORMER_DEFAULT_IMAGE", ""),
  ["code-gen-image"] = config.string("CODE_GEN_IMAGE", ""),
}
for key, value in pairs(versions) do if value == "" then versions[key] = json.null end end
local slack_secret = config.string("SLACK_SIGNING_SECRET", "")
local slack_responses = config.string("SLACK_RESPONSE_URL_PREFIX", "https://hooks.slack.com/")
local signup_webhook = config.string("SIGNUP_WEBHOOK_URL", "")
local mail = Mail.new({
  api_url = config.string("MAILGUN_API_URL", "https://api.mailgun.net/v3"),
  domain = config.string("MAILGUN_DOMAIN", ""), key = config.string("MAILGUN_API_KEY", ""),
  attempts = config.integer("MAIL_ATTEMPTS", 5), backoff = config.number("MAIL_BACKOFF", 1),
})

-- Flask-RESTful's answers for what no resource handles, and its blanket 500.
service:on_error(function(status, message)
  if status == 404 and message == "not found" then
    return { message = "The requested URL was not found on the server. If you entered the URL "
      .. "manually please check your spelling and try again." }
  end
  if status == 405 then return { message = "The method is not allowed for the requested URL." } end
  if status >= 500 then return 500, { message = "Internal Server Error" } end
  return { message = message }
end)

-- CORS(app): every answer may be read by any origin.
service:before(function(_, res) res:header("Access-Control-Allow-Origin", "*") end)

-- The handler behind admin_required.
local function admin_only(handler)
  return function(req, res)
    local admin, status, body = policy:admin_required(req)
    if not admin then return status, body end
    return handler(req, res)
  end
end

local function is_admin_email(email) return admin_email ~= "" and email:lower() == admin_email:lower() end

-- A new refresh token for `user`, stored as the only one accepted from now on.
local function new_refresh_token(user)
  local claims = jwt.claims(user.sub, "refresh", depot.now(), refresh_lifetime)
  local token = jwt.encode(policy.secret, claims)
  -- The token itself too, for the web pages' servicex.yaml (the original's refresh_token column).
  store.change(user.id, function(stored) stored.refresh_jti, stored.refresh_token = claims.jti, token end)
  return token
end

-- Creates the user of `fields` and, when pending, posts the Slack sign-up message: the password
-- API's and the web pages' sign-up. nil if the e-mail or the identity is taken.
local function sign_up(fields)
  local user = store.create(fields)
  if not user then return nil end
  log.info("user registered", { id = user.id, pending = user.pending })
  if user.pending and signup_webhook ~= "" then slack.post(signup_webhook, slack.signup_message(user.email), "signup") end
  return user
end

local function new_access_token(user)
  return jwt.encode(policy.secret, jwt.claims(user.sub, "access", depot.now(), access_lifetime))
end

service:post("/registration", function(req)
  local args, status, body = arguments.parse(req, {
    { "full_name", required = true }, { "email", required = true }, { "password", required = true },
    { "confirm_password", required = true }, { "institution" }, { "experiment" },
  })
  if not args then return status, body end
  local email = args.email
  if store.by_email(email) then return { message = string.format("User %s already exists", email) } end
  if args.password ~= args.confirm_password then return { message = "Passwords do not match" } end
  local hash = assert(crypto.password_hash(args.password, hash_options))
  local admin = is_admin_email(email)
  local user = sign_up({
    sub = jwt.uuid4(), email = email, name = args.full_name, institution = args.institution,
    experiment = args.experiment, admin = admin, pending = not admin, password_hash = hash,
  })
  if not user then return { message = string.format("User %s already exists", email) } end
  return { message = string.format("User %s added to pending user list", email) }
end, api.registration)

service:post("/login", function(req)
  local args, status, body = arguments.parse(req, { { "email", required = true }, { "password", required = true } })
  if not args then return status, body end
  local email, address = args.email, req.remote_addr
  local wait = login_limit:blocked(email, address)
  if wait then
    return 429, { message = string.format("Too many failed login attempts. Try again in %d seconds.", wait) },
      { ["Retry-After"] = tostring(wait) }
  end
  local user = store.by_email(email)
  if not user then
    login_limit:failed(email, address)
    return 404, { message = string.format("User %s doesn't exist", email) }
  end
  if user.pending then
    return 401, { message = string.format("User %s is still pending. Contact administrator to approve request", email) }
  end
  if not (user.password_hash and crypto.password_verify(user.password_hash, args.password)) then
    login_limit:failed(email, address)
    return 401, { message = "Wrong credentials" }
  end
  login_limit:succeeded(email)
  return {
    message = "Logged in as " .. email,
    access_token = new_access_token(user),
    refresh_token = new_refresh_token(user),
  }
end, api.login)

-- Always checked, even with ENABLE_AUTH off (the original's jwt_refresh_token_required).
service:post("/token/refresh", function(req)
  local claims, status, body = policy:claims(req, "refresh")
  if not claims then return status, body end
  local user = type(claims.identity) == "string" and store.by_sub(claims.identity) or nil
  if not user then return 401, { message = "Invalid or outdated refresh token" } end
  if type(claims.jti) ~= "string" or not user.refresh_jti or not crypto.equals(claims.jti, user.refresh_jti) then
    return 401, { message = "Invalid or outdated refresh token" }
  end
  return { access_token = new_access_token(user) }
end, api.refresh)

local function summaries(users, with_pending)
  local list = setmetatable({}, json.array_mt)
  for _, user in ipairs(users) do
    local entry = { email = user.email, id = user.id, admin = user.admin == true }
    if with_pending then entry.pending = user.pending == true end
    list[#list + 1] = entry
  end
  return list
end

service:get("/users", admin_only(function()
  return { users = summaries(store.list(), true) }
end), api.users)

-- Unlike the original, admins are kept: an admin cannot lock everyone out with one call.
service:delete("/users", admin_only(function()
  local count = store.delete_where(function(user) return not user.admin end)
  return { message = string.format("%d row(s) deleted", count) }
end), api.delete_users)

service:delete("/users/:user_id", admin_only(function(req)
  local text = req.params.user_id
  local id = text:match("^%d+$") and tonumber(text)
  if not (id and store.delete(id)) then return 404, { message = string.format("user %s not found", text) } end
  log.info("user deleted", { id = id })
  return { message = string.format("user %d has been deleted", id) }
end), api.delete_user)

local function is_pending(user) return user.pending == true end

service:get("/pending", admin_only(function()
  return { users = summaries(store.list(is_pending), false) }
end), api.pending)

service:delete("/pending", admin_only(function()
  return { message = string.format("%d row(s) deleted", store.delete_where(is_pending)) }
end), api.delete_pending)

-- Approves the user `email` and queues the welcome mail; nil if there is no such user.
local function accept(email)
  local user = store.by_email(email)
  if not user then return nil end
  store.change(user.id, function(stored) stored.pending = false end)
  log.info("user accepted", { id = user.id })
  mail:welcome(user.email)
  return user
end

service:post("/accept", admin_only(function(req)
  local args, status, body = arguments.parse(req, { { "email", required = true } })
  if not args then return status, body end
  if not accept(args.email) then return 404, { message = "No user registered with email: " .. args.email } end
  return { message = string.format("user %s now ready for access", args.email) }
end), api.accept)

-- Messages go back only to a response_url under SLACK_RESPONSE_URL_PREFIX (Slack's own): the
-- refusals are told before the signature is known to be good, and a forged callback must not make
-- this server POST wherever it names.
local function slack_response_url(payload)
  local url = payload.response_url
  if type(url) == "string" and url:sub(1, #slack_responses) == slack_responses then return url end
  if url ~= nil then
    log.warn("slack callback: response_url is not under SLACK_RESPONSE_URL_PREFIX, nothing posted",
             { response_url = tostring(url):sub(1, 200) })
  end
  return nil
end

-- Slack's interactivity callback for the Approve/Reject buttons of the signup message. Unlike
-- the original, missing headers are a 400, a timestamp too far in the future is refused like
-- an old one, Reject deletes the pending user, and nothing is posted outside Slack.
service:post("/slack", function(req)
  local raw = req:body()
  local payload = json.decode(arguments.urlencoded(raw).payload or "")
  if type(payload) ~= "table" then return 400, { message = "Missing or malformed payload" } end
  local response_url = slack_response_url(payload)
  if slack_secret == "" then
    slack.ephemeral(response_url, "ServiceX has no Slack app configured.")
    return 403, ""
  end
  -- The original's tests spell the header with an underscore; accept both.
  local timestamp = req:header("X-Slack-Request-Timestamp") or req.headers["x-slack_request-timestamp"]
  local signature = req:header("X-Slack-Signature")
  if not timestamp or not signature then return 400, { message = "Missing Slack signature headers" } end
  local sent = tonumber(timestamp)
  if not sent or math.abs(depot.now() - sent) > slack.TIMESTAMP_WINDOW then
    slack.ephemeral(response_url, "Sorry, this request has expired.")
    return 403, ""
  end
  if not slack.signed(slack_secret, timestamp, raw, signature) then
    slack.ephemeral(response_url, "Slack Verification Failed: Signatures did not match.")
    return 401, ""
  end
  local action = type(payload.actions) == "table" and payload.actions[1] or {}
  local email = type(action.value) == "string" and action.value or ""
  if action.action_id == "accept_user" then
    if not accept(email) then
      slack.ephemeral(response_url, "No user registered with email: " .. email)
      return 404, ""
    end
    if response_url then slack.post(response_url, slack.decided(payload, "Approved"), "approved") end
  elseif action.action_id == "reject_user" then
    local user = store.by_email(email)
    if not (user and user.pending and store.delete(user.id)) then
      slack.ephemeral(response_url, "No pending user registered with email: " .. email)
      return 404, ""
    end
    log.info("user rejected", { id = user.id })
    if response_url then slack.post(response_url, slack.decided(payload, "Rejected"), "rejected") end
  else
    return 400, { message = "Unknown action" }
  end
  return 200, ""
end, api.slack)

service:get("/servicex", function() return versions end, api.servicex)

-- The web pages: sign-in through an OpenID Connect provider, profile, API token, servicex.yaml.
require("users.web.routes")(service, config, { sign_up = sign_up, new_refresh_token = new_refresh_token,
  is_admin_email = is_admin_email, code_gen_image = config.string("CODE_GEN_IMAGE", "") })

-- Transformation requests and the worker protocol that runs them (scripts/users/transformation/).
require("users.transformation.api").mount(service, policy, config)

-- Makes `email` an approved admin, created if needed; a password replaces the stored one.
local function ensure_admin(email, password)
  local hash = password ~= "" and assert(crypto.password_hash(password, hash_options)) or nil
  local user = store.by_email(email)
  if user then
    return store.change(user.id, function(stored)
      stored.admin, stored.pending = true, false
      if hash then stored.password_hash = hash end
    end)
  end
  return store.create({ sub = jwt.uuid4(), email = email, name = email, admin = true, pending = false,
    password_hash = hash })
end

-- JWT_ADMIN (with JWT_ADMIN_PASSWORD or the legacy JWT_PASS) is an approved admin from the start.
service:on_start(function()
  mail:start()
  if admin_email == "" then return end
  local user = ensure_admin(admin_email, admin_password)
  log.info("admin ready", { id = user and user.id })
end)

local USAGE = "usage: depot admin users pending | approve EMAIL | create-admin EMAIL (password on stdin)"

-- depot admin users ... (ServiceX#636): safe next to a running server on the same data dir, since
-- every change is one kv transaction.
service:command("users", function(args)
  local action, email = args[1], args[2]
  if action == "pending" then
    for _, user in ipairs(store.list(is_pending)) do
      print(string.format("%d\t%s\t%s", user.id, user.email, user.name or ""))
    end
  elseif action == "approve" and email then
    if not accept(email) then error("depot admin users approve: no user registered with email: " .. email, 0) end
    print(string.format("user %s now ready for access", email))
  elseif action == "create-admin" and email then
    local password = io.read("*l") or ""
    if password == "" then error("depot admin users create-admin: the password (on stdin) is empty", 0) end
    local user = ensure_admin(email, password)
    print(string.format("user %s (id %d) is an admin", email, user.id))
  else
    error(USAGE, 0)
  end
end)

-- Last: a service that failed to load must not have claimed its mounts' API pages.
require("openapi").serve(service, api.info)
