-- The users service's API documentation: the info of its OpenAPI document and the documentation
-- options of each route (init.lua passes them to service:get/post/delete), in the original's
-- shapes (docs/services/users.md).
local openapi = require "openapi"
local schema = require "openapi.schema"
local required = schema.required

local M = {}

-- Flask-RESTful's {"message": ...}: a text, or reqparse's argument → reason.
function M.message(examples, description)
  return schema.object({ message = required(schema.any({ examples = examples })) }, { description = description })
end
local message = M.message

-- flask-jwt-extended's token errors.
local TOKEN_ERROR = schema.object({ msg = required(schema.string({ examples = {
  "Bad Authorization header. Expected value 'Bearer <JWT>'", "Signature verification failed", "Token has expired",
} })) })
local BLANK = schema.object({
  message = required(schema.map(schema.string({ const = "This field cannot be blank" }),
    { description = "The missing argument's name → the message" })),
}, { description = "A required argument is missing or blank" })
local TOO_LONG = schema.object({
  message = required(schema.map(schema.string({ pattern = "^Field cannot be longer than [0-9]+ characters[.]$",
    examples = { "Field cannot be longer than 320 characters." } }),
    { description = "The argument's name → the message" })),
}, { description = "An argument is longer than its limit" })

local ADMIN_ERRORS = {
  [401] = { description = "No token, an expired one, or not an admin's",
    json = schema.one_of({ message({ "Missing Authorization Header", "Not Authorized: This resource is restricted to administrators." }), TOKEN_ERROR }) },
  [422] = { description = "A malformed or tampered token, or a refresh token", json = TOKEN_ERROR },
}

local function admin(responses) return openapi.responses(ADMIN_ERRORS, responses) end

-- Flask-RESTful's reqparse reads arguments from a JSON body, the query string or a form.
local function arguments(fields)
  local object = schema.object(fields)
  return { description = "The arguments, as JSON, an urlencoded or a multipart form (or in the query string)",
    required = false,
    content = { ["application/json"] = object, ["application/x-www-form-urlencoded"] = object, ["multipart/form-data"] = object } }
end

local USER_SUMMARY = schema.object({
  email = required(schema.string()), id = required(schema.integer()), admin = required(schema.boolean()),
  pending = schema.boolean({ description = "In GET /users only" }),
})

M.info = {
  title = "ServiceX users",
  version = "1.0",
  description = "Password sign-up and login, JWT access and refresh tokens, and the admin API of ServiceX_App. "
    .. "An unknown path answers 404, a wrong method 405, each with Flask-RESTful's {\"message\": ...}.",
  security_schemes = {
    access_token = { type = "http", scheme = "bearer", bearerFormat = "JWT", description = "An access token from POST /login" },
    refresh_token = { type = "http", scheme = "bearer", bearerFormat = "JWT", description = "A refresh token from POST /login" },
    worker_token = { type = "http", scheme = "bearer", description = "SERVICEX_WORKER_TOKEN, for the transformer workers" },
  },
  responses = { [500] = { description = "A bug", json = message({ "Internal Server Error" }) } },
}

M.registration = {
  summary = "Sign up",
  description = "The new user waits for an admin's approval (JWT_ADMIN's e-mail too: admins come from the start "
    .. "and the CLI only).",
  body = arguments({
    full_name = required(schema.string()), email = required(schema.string()), password = required(schema.string()),
    confirm_password = required(schema.string()), institution = schema.string(), experiment = schema.string(),
  }),
  responses = {
    [200] = { description = "Added, or why not", json = message({ "User a@b.c added to pending user list",
      "User a@b.c already exists", "Passwords do not match" }) },
    [400] = { description = "A required argument missing, an e-mail over 320 bytes, or malformed JSON",
      json = schema.one_of({ BLANK, TOO_LONG, message({ "Failed to decode JSON object: ..." }) }) },
    [429] = { description = "Too many registrations from this address",
      json = message({ "Too many registrations from this address. Try again in 300 seconds." }),
      headers = { ["Retry-After"] = schema.integer({ description = "Seconds to wait" }) } },
  },
}

M.login = {
  summary = "Log in",
  body = arguments({ email = required(schema.string()), password = required(schema.string()) }),
  responses = {
    [200] = { description = "Both tokens", json = schema.object({
      message = required(schema.string({ examples = { "Logged in as a@b.c" } })),
      access_token = required(schema.string()), refresh_token = required(schema.string()),
    }) },
    [400] = { description = "A required argument missing, or malformed JSON",
      json = schema.one_of({ BLANK, message({ "Failed to decode JSON object: ..." }) }) },
    [401] = { description = "Wrong password, or still pending", json = message({ "Wrong credentials" }) },
    [404] = { description = "No such user", json = message({ "User a@b.c doesn't exist" }) },
    [429] = { description = "Too many failed logins of this e-mail or from this address",
      json = message({ "Too many failed login attempts. Try again in 300 seconds." }),
      headers = { ["Retry-After"] = schema.integer({ description = "Seconds to wait" }) } },
  },
}

M.refresh = {
  summary = "A new access token",
  description = "Only the latest refresh token of a user is accepted (checked even with ENABLE_AUTH off).",
  security = { "refresh_token" },
  responses = {
    [200] = { description = "The access token", json = schema.object({ access_token = required(schema.string()) }) },
    [401] = { description = "No token, an expired one, or an outdated one",
      json = schema.one_of({ TOKEN_ERROR, message({ "Invalid or outdated refresh token" }) }) },
    [422] = { description = "A malformed or tampered token, or an access token", json = TOKEN_ERROR },
  },
}

M.users = {
  summary = "List the users", security = { "access_token" },
  responses = admin({ [200] = { description = "Every user", json = schema.object({ users = required(schema.array(USER_SUMMARY)) }) } }),
}

M.delete_users = {
  summary = "Delete every user but the admins", security = { "access_token" },
  responses = admin({ [200] = { description = "How many", json = message({ "3 row(s) deleted" }) } }),
}

M.delete_user = {
  summary = "Delete a user", security = { "access_token" },
  path = { user_id = schema.string({ description = "The user's id", pattern = "^[0-9]+$" }) },
  responses = admin({
    [200] = { description = "Deleted", json = message({ "user 3 has been deleted" }) },
    [404] = { description = "No such user", json = message({ "user 3 not found" }) },
  }),
}

M.pending = {
  summary = "List the pending users", security = { "access_token" },
  responses = admin({ [200] = { description = "The users waiting for approval",
    json = schema.object({ users = required(schema.array(USER_SUMMARY)) }) } }),
}

M.delete_pending = {
  summary = "Delete the pending users", security = { "access_token" },
  responses = admin({ [200] = { description = "How many", json = message({ "2 row(s) deleted" }) } }),
}

M.accept = {
  summary = "Approve a user", description = "And sends the welcome mail.", security = { "access_token" },
  body = arguments({ email = required(schema.string()) }),
  responses = admin({
    [200] = { description = "Approved", json = message({ "user a@b.c now ready for access" }) },
    [400] = { description = "email missing, or malformed JSON", json = schema.one_of({ BLANK, message({ "Failed to decode JSON object: ..." }) }) },
    [404] = { description = "No such user", json = message({ "No user registered with email: a@b.c" }) },
  }),
}

local EMPTY = { description = "Answered to Slack (empty body; the outcome goes to the response_url)", text = schema.string({ const = "" }) }

M.slack = {
  summary = "Slack's interactivity callback",
  description = "The Approve and Reject buttons of the signup message, signed with SLACK_SIGNING_SECRET.",
  headers = {
    ["X-Slack-Request-Timestamp"] = required(schema.string({ description = "Unix seconds" })),
    ["X-Slack-Signature"] = required(schema.string({ description = "v0=<HMAC-SHA256>" })),
  },
  body = { content = { ["application/x-www-form-urlencoded"] = schema.object({
    payload = required(schema.string({ description = "Slack's JSON payload" })),
  }) } },
  responses = {
    [200] = EMPTY,
    [400] = { description = "No payload, no signature headers, or an unknown action",
      json = message({ "Missing or malformed payload", "Missing Slack signature headers", "Unknown action" }) },
    [401] = { description = "The signature does not match", text = schema.string({ const = "" }) },
    [403] = { description = "Expired, or no Slack app configured", text = schema.string({ const = "" }) },
    [404] = { description = "No such (pending) user", text = schema.string({ const = "" }) },
  },
}

M.servicex = {
  summary = "The versions of the deployment",
  responses = { [200] = { description = "The versions (null when not set)", json = schema.object({
    ["app-version"] = required(schema.nullable(schema.string())),
    ["default-transformer"] = required(schema.nullable(schema.string())),
    ["code-gen-image"] = required(schema.nullable(schema.string())),
  }) } },
}

return M
