-- Cache IDs, byte-identical to the KBase cache: the hex BLAKE2b-512 digest of
-- token_id .. "\n" .. Python's json.dumps(json.loads(body), sort_keys=True).
local crypto = require "crypto"
local json = require "json"

local M = {}

M.NOT_AN_OBJECT = "Must provide non-empty JSON data for the cache identifier"

-- json's "json.decode: syntax error at line 1 column 1 (char 0): Expecting value" in the words of
-- Python's JSONDecodeError, "Expecting value: line 1 column 1 (char 0)", which the original sent.
local function python_message(message)
  local position, reason = message:match("syntax error at (line %d+ column %d+ %(char %d+%)): (.+)$")
  if not position then return (message:gsub("^json%.decode: ", "")) end
  return reason .. ": " .. position
end

-- The cache id for a request body (JSON text) and the caller's token_id; or nil and the error
-- message when the body is not JSON, or not a non-empty JSON object.
function M.from_body(token_id, text)
  -- Python's json.loads(bytes) reads a UTF-8 byte-order mark as an encoding marker, not as text.
  text = text:gsub("^\239\187\191", "")
  local value, err = json.decode(text)
  if err then return nil, "JSON parsing error: " .. python_message(err) end
  if getmetatable(value) ~= json.object_mt or next(value) == nil then return nil, M.NOT_AN_OBJECT end
  return M.compute(token_id, assert(json.python_json(text)))
end

function M.compute(token_id, canonical_json)
  return crypto.hex(crypto.blake2b(token_id .. "\n" .. canonical_json))
end

return M
