-- Image ids as the Kentik image cache made them: sha256 hex of Python's str() of the decoded
-- api_query, "_", and the expiry time (Unix seconds, microsecond precision) as Python's float
-- repr — so an id carries its own expiry.
local crypto = require "crypto"
local json = require "json"

local M = {}

-- The raw JSON text of a top-level member of an object document (the last one if repeated, as
-- Python's json keeps), or nil. Needed because str() follows the document's key order and
-- number spelling, which decoding and re-encoding would lose.
function M.member_text(document, wanted)
  local position, found = 1, nil
  local function skip_space() position = document:find("[^ \t\r\n]", position) or #document + 1 end
  local function skip_string()
    position = position + 1
    while true do
      local stop = document:find('["\\]', position)
      if not stop then error("unterminated string") end
      if document:sub(stop, stop) == "\\" then position = stop + 2 else position = stop + 1; return end
    end
  end
  local function skip_value()
    skip_space()
    local first = document:sub(position, position)
    if first == '"' then return skip_string() end
    if first ~= "{" and first ~= "[" then
      position = document:find("[,}%]]", position) or #document + 1
      return
    end
    local depth = 0
    repeat -- from bracket or quote to the next one: the bytes between never matter
      local char = document:sub(position, position)
      if char == '"' then skip_string()
      else
        if char == "{" or char == "[" then depth = depth + 1 elseif char == "}" or char == "]" then depth = depth - 1 end
        if depth == 0 then position = position + 1
        else position = document:find('[{}%[%]"]', position + 1) or #document + 1 end
      end
    until depth == 0 or position > #document
  end
  skip_space()
  if document:sub(position, position) ~= "{" then return nil end
  position = position + 1
  while true do
    skip_space()
    if document:sub(position, position) ~= '"' then return found end
    local key_start = position
    skip_string()
    local key = json.decode(document:sub(key_start, position - 1))
    skip_space()
    position = position + 1 -- the colon
    skip_space()
    local value_start = position
    skip_value()
    if key == wanted then found = document:sub(value_start, position - 1):match("^(.-)%s*$") end
    skip_space()
    if document:sub(position, position) ~= "," then return found end
    position = position + 1
  end
end

-- Python's repr of the float `seconds` rounded to microseconds: 1620973821.2844, 1620973821.0.
function M.expiry_text(seconds)
  local micros = math.floor(seconds * 1e6 + 0.5)
  local whole = math.floor(micros / 1e6)
  return json.python_json(string.format("%d.%06d", whole, micros - whole * 1e6))
end

function M.make(query_text, expiry_seconds)
  return crypto.hex(crypto.sha256(json.python_repr(query_text))) .. "_" .. M.expiry_text(expiry_seconds)
end

-- The expiry an id carries, or nil when it carries none.
function M.expiry(id)
  local text = id:match("^[0-9a-f]+_([0-9.eE+-]+)$")
  return text and tonumber(text)
end

return M
