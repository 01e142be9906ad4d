-- A JSON answer holding a list too long to build as one table: written a page at a time, with a
-- pause between pages so the worker serves others meanwhile (and waits while the client reads).
local depot = require "depot"
local json = require "json"

local M = {}

M.PAGE = 50

-- Answers 200 with `open` .. the items joined by "," .. `close` (the JSON text around the list).
-- `next_page(after)` returns a page of items (already shaped for JSON) and the position after it,
-- nil at the end.
function M.list(res, open, close, next_page)
  res:start(200, { ["Content-Type"] = "application/json" })
  if not res:write(open) then return end
  local after, separator = nil, ""
  repeat
    local items
    items, after = next_page(after)
    local parts = {}
    for i, item in ipairs(items) do parts[i] = json.encode(item) end
    if #parts > 0 then
      if not res:write(separator .. table.concat(parts, ",")) then return end
      separator = ","
    end
    if after then depot.sleep(0) end
  until not after
  res:write(close)
  res:finish()
end

return M
