-- Image ids as the Kentik image cache made them: sha256 hex of Python's str() of the decoded
-- api_query, "_", and the expiry time (Unix seconds, microsecond precision) as Python's float
-- repr — so an id carries its own expiry.
local crypto = require "crypto"
local json = require "json"

local M = {}

-- Python's repr of the float `seconds` rounded to microseconds: 1620973821.2844, 1620973821.0.
function M.expiry_text(seconds)
  local micros = math.floor(seconds * 1e6 + 0.5)
  local whole = math.floor(micros / 1e6)
  return json.python_json(string.format("%d.%06d", whole, micros - whole * 1e6))
end

function M.make(query_text, expiry_seconds)
  return crypto.hex(crypto.sha256(json.python_repr(query_text))) .. "_" .. M.expiry_text(expiry_seconds)
end

-- The expiry an id carries, or nil when it carries none. Longer than 128 bytes it is none that
-- M.make made (64 hex digits, "_", a float's repr), and it could not even be a kv key.
function M.expiry(id)
  if #id > 128 then return nil end
  local text = id:match("^[0-9a-f]+_([0-9.eE+-]+)$")
  return text and tonumber(text)
end

return M
