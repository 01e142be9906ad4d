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

local function expiration(expiry, now)
  if not expiry then return "<invalid>" end
  return iso_utc(expiry) .. " (remaining: " .. timedelta(expiry - now) .. ")"
end

-- One listing row as json.encode writes it (keys in byte order), spelled out: encoding a table per
-- row was most of /info's time. Only the id could need escaping (types and expirations are this
-- file's own ASCII), and ids this service made never do.
local function row_json(json, row, now)
  local id = row.id:find('^[%w_.+-]*$') and '"' .. row.id .. '"' or json.encode(row.id)
  return '{"expiration":"' .. expiration(row.expiry, now) .. '","id":' .. id .. ',"size":'
    .. string.format("%d", row.size or 0) .. ',"type":"' .. row.type .. '"}'
end

-- Streams the listing as the original's JSON ({"active_count", "active_entries",
-- "pending_count", "pending_entries"}, keys in byte order as json.encode writes them) a page of
-- the index at a time, yielding between pages: its cost and memory follow one page, not the
-- whole cache. Counts are read first; an entry that settles during the listing may be counted in
-- one section and listed in the other.
function M.stream(entries, res, now)
  local json = require "json"
  local depot = require "depot"
  res:start(200, { ["Content-Type"] = "application/json" })
  local connected = true
  local function write(text)
    connected = connected and res:write(text) ~= nil
    return connected
  end
  local function section(name, opening)
    if not write(opening .. entries:count(name) .. ',"' .. name .. '_entries":[') then return end
    local first = true
    entries:each_listed(name, function(rows)
      local parts = {}
      for i, row in ipairs(rows) do
        parts[i] = row_json(json, row, now)
      end
      if not write((first and "" or ",") .. table.concat(parts, ",")) then return false end
      first = false
      depot.sleep(0)
    end)
  end
  section("active", '{"active_count":')
  section("pending", '],"pending_count":')
  write("]}")
end

M.timedelta = timedelta
M.iso_utc = iso_utc
return M
