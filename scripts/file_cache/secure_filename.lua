-- werkzeug's secure_filename, as the KBase cache applied it to uploaded names (werkzeug 1.0 on
-- Linux): an Internet Explorer style full Windows path is cut to its last part; then NFKD
-- normalisation with everything non-ASCII dropped; "/" becomes a space; runs of whitespace become
-- one "_"; every character outside [A-Za-z0-9_.-] is deleted; "." and "_" are stripped at both
-- ends. Depot's fix: a name that comes out empty becomes "file" (the original answered 500).
local bit = require "bit"
local folded = require "file_cache.ascii_folding"

local M = {}

M.EMPTY_NAME_REPLACEMENT = "file"

-- The sequence length a UTF-8 lead byte announces, and the smallest code point that length may
-- encode (shorter, "overlong" encodings are invalid, as Python's decoder says).
local sequence = {
  [2] = { mask = 0x1F, minimum = 0x80 },
  [3] = { mask = 0x0F, minimum = 0x800 },
  [4] = { mask = 0x07, minimum = 0x10000 },
}

local function sequence_length(lead)
  if lead >= 0xF0 then return 4 elseif lead >= 0xE0 then return 3 else return 2 end
end

-- The code point of a well-formed UTF-8 sequence, or nil for an invalid one.
local function code_point(bytes)
  local length = sequence_length(bytes:byte(1))
  if #bytes ~= length then return nil end
  local value = bit.band(bytes:byte(1), sequence[length].mask)
  for i = 2, length do value = value * 64 + bit.band(bytes:byte(i), 0x3F) end
  if value < sequence[length].minimum or value > 0x10FFFF or (value >= 0xD800 and value < 0xE000) then
    return nil
  end
  return value
end

-- NFKD, then drop non-ASCII. Bytes that are not valid UTF-8 are dropped too (Python decoded them
-- as U+FFFD, which has no ASCII part).
local function to_ascii(name)
  name = name:gsub("[\xC2-\xF4][\x80-\xBF]*", function(bytes)
    local length = sequence_length(bytes:byte(1))
    local point = code_point(bytes:sub(1, length))
    return point and folded[point] or ""
  end)
  return (name:gsub("[\x80-\xFF]", ""))
end

-- werkzeug's form parser kept only the last part of "C:\dir\name" and "\\server\dir\name".
local function without_windows_path(name)
  if name:match("^[\1-\127\xC2-\xF4][\x80-\xBF]*:\\") or name:sub(1, 2) == "\\\\" then
    return name:match("([^\\]*)$")
  end
  return name
end

function M.secure_filename(name)
  name = to_ascii(without_windows_path(name)):gsub("/", " ")
  local words = {}
  -- Python's str.split(): ASCII whitespace is %s plus the separators \x1C..\x1F.
  for word in name:gmatch("[^%s\28-\31]+") do words[#words + 1] = word end
  name = table.concat(words, "_"):gsub("[^%w_%.%-]", "")
  name = name:gsub("^[%._]+", ""):gsub("[%._]+$", "")
  if name == "" then return M.EMPTY_NAME_REPLACEMENT end
  return name
end

return M
