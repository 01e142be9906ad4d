-- The /info listing in the original's format, including Python's datetime.isoformat() and
-- str(timedelta) renderings of expirations.
--
-- Why it is written the way it is: route scripts run interpreted (the JIT is off), and what costs
-- there is making strings (each concatenation and substring is interned, and collected later)
-- and calling C (os.date, string.format, patterns). So a row is not a string of its own: its
-- pieces, most of them constants or entries of the digit tables below, go into the page's list,
-- which becomes one string per page; os.date runs once per distinct day, string.format and
-- patterns never per row.
local M = {}

local floor = math.floor

-- The fields of a time as Python pads them: "0".."23" (timedelta's hours), "00".."59", "000".."999".
local HOURS, TWO_DIGITS, THREE_DIGITS = {}, {}, {}
for i = 0, 23 do HOURS[i] = string.format("%d", i) end
for i = 0, 59 do TWO_DIGITS[i] = string.format("%02d", i) end
for i = 0, 999 do THREE_DIGITS[i] = string.format("%03d", i) end

-- The pieces of "H:MM:SS[.ffffff]" for `whole` seconds (0..86399) and `micros` (0..999999), the
-- fraction written only when not zero (as Python does), at parts[n + 1 ...]; returns the new n.
local function add_clock(parts, n, hours, whole, micros)
  local minutes = floor(whole / 60)
  parts[n + 1] = hours[floor(minutes / 60)]
  parts[n + 2] = ":"
  parts[n + 3] = TWO_DIGITS[minutes % 60]
  parts[n + 4] = ":"
  parts[n + 5] = TWO_DIGITS[whole % 60]
  if micros == 0 then return n + 5 end
  local millis = floor(micros / 1000)
  parts[n + 6] = "."
  parts[n + 7] = THREE_DIGITS[millis]
  parts[n + 8] = THREE_DIGITS[micros - millis * 1000]
  return n + 8
end

-- datetime.fromtimestamp(seconds, timezone.utc).isoformat(), "2021-05-14T06:30:21.284400+00:00",
-- as pieces at parts[n + 1 ...]; returns the new n. `dates` caches "YYYY-MM-DDT" by day.
local function add_iso_utc(parts, n, seconds, dates)
  local whole = floor(seconds)
  local micros = floor((seconds - whole) * 1e6 + 0.5)
  if micros == 1000000 then whole, micros = whole + 1, 0 end
  local day = floor(whole / 86400)
  local date = dates[day]
  if not date then
    date = os.date("!%Y-%m-%dT", day * 86400)
    dates[day] = date
  end
  parts[n + 1] = date
  n = add_clock(parts, n + 1, TWO_DIGITS, whole - day * 86400, micros)
  parts[n + 1] = "+00:00"
  return n + 1
end

-- str(datetime.timedelta(seconds=...)), "0:05:21.284400", "-1 day, 23:54:38.715600", as pieces at
-- parts[n + 1 ...]; returns the new n.
local function add_timedelta(parts, n, seconds)
  local micros_total = floor(seconds * 1e6 + 0.5)
  local days = floor(micros_total / 86400e6)
  local rest = micros_total - days * 86400e6
  local whole = floor(rest / 1e6)
  if days ~= 0 then
    -- Rare (a ttl over a day, or an expired entry): string.format as Python's "%d day%s, ".
    parts[n + 1] = string.format("%d day%s, ", days, (days == 1 or days == -1) and "" or "s")
    n = n + 1
  end
  return add_clock(parts, n, HOURS, whole, rest - whole * 1e6)
end

local function rendered(add, ...)
  local parts = {}
  add(parts, 0, ...)
  return table.concat(parts)
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
  local dates = {}
  -- The page being rendered: its pieces (parts[1..n]), and its ids (ids[1..count]) with the index
  -- of each in `parts`. Reused from page to page.
  local parts, n, ids, id_at, count = {}, 0, {}, {}, 0
  local opening = '{"expiration":"'
  -- A row as json.encode writes it (keys in byte order). Types and expirations are this file's
  -- own ASCII; only an id could need escaping (ids this service made never do): end_page
  -- escapes them if one does.
  local function add_row(id, kind, size, expiry)
    parts[n + 1] = opening
    n = n + 1
    if expiry then
      n = add_iso_utc(parts, n, expiry, dates)
      parts[n + 1] = " (remaining: "
      n = add_timedelta(parts, n + 1, expiry - now)
      parts[n + 1] = ')","id":"'
    else
      parts[n + 1] = '<invalid>","id":"'
    end
    count = count + 1
    ids[count], id_at[count] = id, n + 2
    parts[n + 2] = id
    parts[n + 3] = '","size":'
    parts[n + 4] = size
    parts[n + 5] = ',"type":"'
    parts[n + 6] = kind
    parts[n + 7] = '"}'
    n = n + 7
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

function M.timedelta(seconds) return rendered(add_timedelta, seconds) end
function M.iso_utc(seconds) return rendered(add_iso_utc, seconds, {}) end
return M
