-- The /info listing in the original's format, including Python's datetime.isoformat() and
-- str(timedelta) renderings of expirations.
local M = {}

local function iso_utc(seconds)
  local whole = math.floor(seconds)
  local micros = math.floor((seconds - whole) * 1e6 + 0.5)
  if micros == 1000000 then whole, micros = whole + 1, 0 end
  local text = os.date("!%Y-%m-%dT%H:%M:%S", whole)
  if micros > 0 then text = text .. string.format(".%06d", micros) end
  return text .. "+00:00"
end

-- str(datetime.timedelta(seconds=...)): "0:05:21.284400", "-1 day, 23:54:38.715600".
local function timedelta(seconds)
  local micros_total = math.floor(seconds * 1e6 + 0.5)
  local days = math.floor(micros_total / 86400e6)
  local rest = micros_total - days * 86400e6
  local whole = math.floor(rest / 1e6)
  local micros = rest - whole * 1e6
  local text = string.format("%d:%02d:%02d", math.floor(whole / 3600), math.floor(whole / 60) % 60, whole % 60)
  if micros > 0 then text = text .. string.format(".%06d", micros) end
  if days ~= 0 then text = string.format("%d day%s, %s", days, math.abs(days) == 1 and "" or "s", text) end
  return text
end

local TYPES = { pending = "api_request", image = "image", error = "api_error" }

function M.render(entries, now)
  local active, pending = {}, {}
  for _, entry in ipairs(entries) do
    local row = {
      id = entry.id,
      type = TYPES[entry.state] or "invalid",
      size = entry.size or #(entry.query or ""),
      expiration = entry.expiry and (iso_utc(entry.expiry) .. " (remaining: " .. timedelta(entry.expiry - now) .. ")")
        or "<invalid>",
    }
    if entry.state == "pending" then pending[#pending + 1] = row else active[#active + 1] = row end
  end
  local json = require "json"
  return { active_count = #active, pending_count = #pending,
           active_entries = setmetatable(active, json.array_mt), pending_entries = setmetatable(pending, json.array_mt) }
end

M.timedelta = timedelta
M.iso_utc = iso_utc
return M
