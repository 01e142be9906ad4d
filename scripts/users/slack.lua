-- The Slack side of the user service (spec §4.7): the signup message with Approve/Reject buttons
-- posted to SIGNUP_WEBHOOK_URL, and the checks and answers of Slack's interactivity callbacks
-- (v0 request signatures, messages posted back to the callback's response_url).
local crypto = require "crypto"
local json = require "json"
local http = require "http"
local log = require "log"

local M = {}

-- Slack refuses to sign requests more than five minutes old; so do we, in both directions.
M.TIMESTAMP_WINDOW = 300

local function button(label, style, action_id, email)
  return { type = "button", text = { type = "plain_text", text = label }, style = style,
    action_id = action_id, value = email }
end

-- The signup message for `email`, as the original posts it.
function M.signup_message(email)
  return {
    blocks = {
      { type = "section", text = { type = "mrkdwn", text = "New signup from " .. email } },
      { type = "actions", elements = {
        button("Approve", "primary", "accept_user", email), button("Reject", "danger", "reject_user", email),
      } },
    },
    text = "New signup from " .. email .. ".",
  }
end

-- Posts `message` (a table) as JSON to `url`; logs a failure and returns whether Slack took it.
function M.post(url, message, what)
  local response, err = http.post(url, json.encode(message), { timeout = 10, retries = 2 })
  local status = response and response.status
  if not status or status < 200 or status >= 300 then
    log.error("slack post failed", { what = what, status = status, reason = err })
    return false
  end
  return true
end

function M.ephemeral(url, text)
  if type(url) ~= "string" then return end
  M.post(url, { response_type = "ephemeral", replace_original = false, text = text }, "ephemeral")
end

-- Whether `signature` is Slack's v0 signature of `body` sent at `timestamp` under `secret`.
function M.signed(secret, timestamp, body, signature)
  local expected = "v0=" .. crypto.hex(crypto.hmac_sha256(secret, "v0:" .. timestamp .. ":" .. body))
  return crypto.equals(expected, signature)
end

-- The message replacing the signup message once `verb` ("Approved", "Rejected") was done.
function M.decided(payload, verb)
  local blocks = type(payload.message) == "table" and type(payload.message.blocks) == "table"
    and payload.message.blocks or {}
  local user = type(payload.user) == "table" and payload.user.id or "unknown"
  return {
    blocks = { blocks[1] or json.null,
      { type = "context", elements = { { type = "mrkdwn", text = verb .. " by <@" .. tostring(user) .. ">" } } } },
    replace_original = true,
  }
end

return M
