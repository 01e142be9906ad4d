-- Cache IDs, byte-identical to the KBase cache: the BLAKE2b-512 hex digest of
-- token_id .. "\n" .. Python's json.dumps(body, sort_keys=True).
local crypto = require "crypto"
local json = require "json"

local M = {}

local non_empty_object = "Must provide non-empty JSON data for the cache identifier"

-- The id for a request body (JSON text) and the caller's token_id, or nil and the original's
-- message when the body is not a non-empty JSON object.
function M.from_body(token_id, text)
  if text == "" then return nil, "JSON parsing error: Expecting value: line 1 column 1 (char 0)" end
  local value, err = json.decode(text)
  if value == nil and err then return nil, "JSON parsing error: " .. err:gsub("^json%.decode: ", "") end
  if type(value) ~= "table" or getmetatable(value) == json.array_mt or next(value) == nil then
    return nil, non_empty_object
  end
  return M.compute(token_id, assert(json.python_json(text)))
end

function M.compute(token_id, canonical_json)
  return crypto.hex(crypto.blake2b(token_id .. "\n" .. canonical_json))
end

return M
