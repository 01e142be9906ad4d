-- The /info listing in the original's format, including Python's datetime.isoformat() and
-- str(timedelta) renderings of expirations.
--
-- Why it is written the way it is: route scripts run interpreted (the JIT is off), every bytecode
-- through the engine's count hook, and what costs is bytecodes, making strings (each
-- concatenation and substring is interned, and collected later) and calling C (os.date,
-- string.format, patterns). So a row is not a string of its own: its pieces, constants and cached
-- strings, go into the page's list, which becomes one string per page; os.date and string.format
-- run once per distinct second of a listing, patterns never per row.
local M = {}

local floor = math.floor

-- "000".."999": a fraction's digits as Python pads them, without string.format.
local THREE_DIGITS = {}
for i = 0, 999 do THREE_DIGITS[i] = string.format("%03d", i) end

-- How many whole seconds a listing's caches hold before they start afresh: one listing is many
-- entries sharing few seconds (expiries are posting times plus a common ttl), and the bound keeps
-- one over a wide spread of expiries small.
local CACHED_SECONDS = 1024

-- Python's ".%06d" of `micros` (an integer 0..999999), written only when not zero, as pieces at
-- parts[n + 1 ...]; returns the new n.
local function add_fraction(parts, n, micros)
  if micros == 0 then return n end
  local millis = floor(micros / 1000)
  parts[n + 1] = "."
  parts[n + 2] = THREE_DIGITS[millis]
  parts[n + 3] = THREE_DIGITS[micros - millis * 1000]
  return n + 3
end

-- str(datetime.timedelta(days=days, seconds=whole)) for whole in 0..86399: "0:05:21",
-- "-1 day, 23:54:38".
local function timedelta_clock(days, whole)
  local text = string.format("%d:%02d:%02d", floor(whole / 3600), floor(whole / 60) % 60, whole % 60)
  if days ~= 0 then text = string.format("%d day%s, %s", days, math.abs(days) == 1 and "" or "s", text) end
  return text
end

-- A listing's expirations as the original wrote them, "<isoformat> (remaining: <timedelta>)":
-- datetime.fromtimestamp(expiry, timezone.utc).isoformat() and str(timedelta(seconds=expiry -
-- now)). Returns add(parts, n, expiry), which puts the pieces at parts[n + 1 ...] and returns the
-- new n. The whole-second parts are made once per distinct second (os.date, string.format) and
-- cached; per entry it is arithmetic and table lookups.
local function expirations(now)
  local iso_of, timedelta_of, cached = {}, {}, 0
  return function(parts, n, expiry)
    if cached >= CACHED_SECONDS then iso_of, timedelta_of, cached = {}, {}, 0 end
    local whole = floor(expiry)
    local micros = floor((expiry - whole) * 1e6 + 0.5)
    if micros == 1000000 then whole, micros = whole + 1, 0 end
    local text = iso_of[whole]
    if not text then
      text = os.date("!%Y-%m-%dT%H:%M:%S", whole)
      iso_of[whole], cached = text, cached + 1
    end
    parts[n + 1] = text
    n = add_fraction(parts, n + 1, micros)
    parts[n + 1] = "+00:00 (remaining: "
    local micros_total = floor((expiry - now) * 1e6 + 0.5)
    local days = floor(micros_total / 86400e6)
    local rest = micros_total - days * 86400e6
    whole = floor(rest / 1e6)
    local seconds = days * 86400 + whole
    text = timedelta_of[seconds]
    if not text then
      text = timedelta_clock(days, whole)
      timedelta_of[seconds], cached = text, cached + 1
    end
    parts[n + 2] = text
    n = add_fraction(parts, n + 2, rest - whole * 1e6)
    parts[n + 1] = ")"
    return n + 1
  end
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
  local add_expiration = expirations(now)
  -- The page being rendered: its pieces (parts[1..n]), and its ids (ids[1..count]) with the index
  -- of each in `parts`. Reused from page to page.
  local parts, n, ids, id_at, count = {}, 0, {}, {}, 0
  local opening = '{"expiration":"'
  -- A row as json.encode writes it (keys in byte order). Types and expirations are this file's
  -- own ASCII; only an id could need escaping (ids this service made never do): end_page
  -- escapes them if one does.
  local function add_row(id, kind, size, expiry)
    parts[n + 1] = opening
    local at = n + 1
    if expiry then
      at = add_expiration(parts, at, expiry)
      parts[at + 1] = '","id":"'
    else
      parts[at + 1] = '<invalid>","id":"'
    end
    count = count + 1
    ids[count], id_at[count] = id, at + 2
    parts[at + 2] = id
    parts[at + 3] = '","size":'
    parts[at + 4] = size
    parts[at + 5] = ',"type":"'
    parts[at + 6] = kind
    parts[at + 7] = '"}'
    n = at + 7
    opening = ',{"expiration":"'
  end
  local function end_page()
    -- One check for the page, in C: its ids, quoted, read back as a JSON string unchanged only
    -- if none holds a quote, a backslash or a control character, what json.encode escapes.
    local joined = table.concat(ids, "", 1, count)
    if json.decode('"' .. joined .. '"') ~= joined then
      for i = 1, count do parts[id_at[i]] = json.encode(ids[i]):sub(2, -2) end
    end
    local text = table.concat(parts, "", 1, n)
    n, count = 0, 0
    if not write(text) then return false end
    depot.sleep(0)
  end
  local function section(name, heading)
    if not write(heading .. entries:count(name) .. ',"' .. name .. '_entries":[') then return end
    opening = '{"expiration":"'
    entries:each_listed(name, add_row, end_page)
  end
  section("active", '{"active_count":')
  section("pending", '],"pending_count":')
  write("]}")
end

-- One expiration as a listing renders it (for tests).
function M.expiration(expiry, now)
  local parts = {}
  return table.concat(parts, "", 1, expirations(now)(parts, 0, expiry))
end
return M
