-- Client text made valid UTF-8 before it is echoed, logged or stored as JSON: starlette decodes
-- query strings with errors="replace", so the original answered "Invalid staging method: \u{FFFD}"
-- for ?method=%FF, and a record (JSON in kv) cannot hold bytes that are not UTF-8. JSON bodies may
-- carry lone surrogates (\uD800), which decode to bytes that are not UTF-8 either.
local json = require "json"

local M = {}

local REPLACEMENT = "\239\191\189"  -- U+FFFD

-- The continuation byte ranges after each lead byte (RFC 3629: no overlongs, no surrogates, at
-- most U+10FFFF); a lead byte missing from the table is invalid on its own.
local FOLLOWERS = {}
for lead = 0xC2, 0xDF do FOLLOWERS[lead] = { { 0x80, 0xBF } } end
for lead = 0xE1, 0xEF do FOLLOWERS[lead] = { { 0x80, 0xBF }, { 0x80, 0xBF } } end
FOLLOWERS[0xE0] = { { 0xA0, 0xBF }, { 0x80, 0xBF } }
FOLLOWERS[0xED] = { { 0x80, 0x9F }, { 0x80, 0xBF } }
for lead = 0xF1, 0xF3 do FOLLOWERS[lead] = { { 0x80, 0xBF }, { 0x80, 0xBF }, { 0x80, 0xBF } } end
FOLLOWERS[0xF0] = { { 0x90, 0xBF }, { 0x80, 0xBF }, { 0x80, 0xBF } }
FOLLOWERS[0xF4] = { { 0x80, 0x8F }, { 0x80, 0xBF }, { 0x80, 0xBF } }

-- `text` with each maximal invalid subsequence replaced by U+FFFD, as Python's
-- decode("utf-8", "replace") does; valid text comes back as it is (checked by the json encoder).
function M.valid(text)
  if pcall(json.encode, text) then return text end
  local parts, at = {}, 1
  while at <= #text do
    local lead = text:byte(at)
    if lead < 0x80 then
      local stop = text:find("[\128-\255]", at) or #text + 1
      parts[#parts + 1] = text:sub(at, stop - 1)
      at = stop
    else
      local followers, length = FOLLOWERS[lead] or {}, 1
      for _, range in ipairs(followers) do
        local byte = text:byte(at + length)
        if not byte or byte < range[1] or byte > range[2] then break end
        length = length + 1
      end
      parts[#parts + 1] = length == #followers + 1 and length > 1 and text:sub(at, at + length - 1) or REPLACEMENT
      at = at + length
    end
  end
  return table.concat(parts)
end

return M
