-- The welcome mail sent through Mailgun when a user is approved (spec §4.7): pushed to a durable
-- queue by the approval, sent by a background job with retries, so that a Mailgun failure never
-- fails nor undoes the approval.
local crypto = require "crypto"
local http = require "http"
local queue = require "queue"

local M = {}
M.__index = M

local WELCOME = [[<html><body><p>Welcome to ServiceX!</p>
<p>Your account has been approved: you can now use your API token.</p></body></html>]]

local function form_encode(fields)
  local parts = {}
  for _, field in ipairs(fields) do
    local value = field[2]:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    parts[#parts + 1] = field[1] .. "=" .. value
  end
  return table.concat(parts, "&")
end

-- `settings`: api_url, domain, key (nil key or domain: mail is off), attempts, backoff.
function M.new(settings)
  local self = setmetatable({ enabled = settings.key ~= "" and settings.domain ~= "" }, M)
  self.queue = queue.open("users_welcome_mail", { attempts = settings.attempts, backoff = settings.backoff })
  self.queue:handler(function(email)
    local response, err = http.post(settings.api_url .. "/" .. settings.domain .. "/messages", form_encode({
      { "from", "ServiceX <noreply@" .. settings.domain .. ">" }, { "to", email },
      { "subject", "Welcome to ServiceX!" }, { "html", WELCOME },
    }), { timeout = 30, headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = "Basic " .. crypto.base64("api:" .. settings.key),
    } })
    if not response then error("mailgun: " .. tostring(err), 0) end
    if response.status < 200 or response.status >= 300 then error("mailgun answered " .. response.status, 0) end
  end)
  return self
end

-- Queues the welcome mail for `email` (nothing when Mailgun is not configured).
function M:welcome(email)
  if self.enabled then assert(self.queue:push(email)) end
end

function M:start() self.queue:start() end

return M
