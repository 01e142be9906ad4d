-- The staging log that GET /logs/ shows: the original's plain-text lines
-- ("%(asctime)s - %(levelname)s - %(message)s", asctime as Python prints it in local time), kept
-- in kv so that every worker writes to one log, newest last, and bounded: past `max_lines` the
-- oldest lines are dropped. Each line also goes to Depot's own log (stderr) at the same level.
-- Nothing secret is ever passed in: callers log paths, users and methods, never tokens.
local depot = require "depot"
local kv = require "kv"
local log = require "log"

local M = {}
M.__index = M

local LEVELS = { DEBUG = 10, INFO = 20, WARNING = 30, ERROR = 40 }
local DEPOT_LEVEL = { DEBUG = "debug", INFO = "info", WARNING = "warn", ERROR = "error" }
local MAX_LINE_BYTES = 4096
local PRUNE_EVERY = 256

function M.new(level, max_lines)
  return setmetatable({
    -- Batched: a log line must not cost an fsync; a crash may lose the last ~100 ms of lines.
    lines = kv.open("staging_log", { durable = false }),
    threshold = LEVELS[level] or LEVELS.INFO,
    max_lines = max_lines,
  }, M)
end

local function sequence_key(n) return string.format("%016d", n) end

-- "2026-12-01 10:02:49,123", as logging's default asctime.
local function asctime()
  local now = depot.now()
  return os.date("%Y-%m-%d %H:%M:%S", math.floor(now)) .. string.format(",%03d", math.floor(now % 1 * 1000))
end

function M:write(level, message)
  if LEVELS[level] < self.threshold then return end
  if #message > MAX_LINE_BYTES then message = message:sub(1, MAX_LINE_BYTES) .. "..." end
  -- Client paths reach these messages: a newline in one must not forge a line of its own.
  message = message:gsub("%c", function(c) return string.format("\\x%02x", c:byte()) end)
  local line = asctime() .. " - " .. level .. " - " .. message
  local max_lines = self.max_lines
  self.lines:update(function(tx)
    local n = (tonumber(tx:get("next") or 0) or 0) + 1
    tx:put("next", tostring(n))
    tx:put(sequence_key(n), line)
    if n % PRUNE_EVERY == 0 and n > max_lines then
      for _, old in ipairs(tx:iter({ from = sequence_key(0), to = sequence_key(n - max_lines + 1) })) do
        tx:delete(old.key)
      end
    end
  end)
  log[DEPOT_LEVEL[level]]("staging: " .. message)
end

function M:debug(message) self:write("DEBUG", message) end
function M:info(message) self:write("INFO", message) end
function M:warning(message) self:write("WARNING", message) end
function M:error(message) self:write("ERROR", message) end

-- The whole log, newest line last, each line ending in "\n"; nil when nothing was logged yet.
function M:text()
  local next_line = tonumber(self.lines:get("next") or 0) or 0
  local first = math.max(1, next_line - self.max_lines + 1)
  local rows = self.lines:iter({ from = sequence_key(first), to = sequence_key(next_line + 1) })
  if #rows == 0 then return nil end
  local out = {}
  for i, row in ipairs(rows) do out[i] = row.value end
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return M
