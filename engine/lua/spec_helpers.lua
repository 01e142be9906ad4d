-- Lua module `depot.spec`: what a busted spec run by `depot test` needs to try services the way a
-- client meets them — embedded Depot servers on port 0 (real listeners, real HTTP), stand-in
-- upstreams (the Lua stubs of tests/stubs/, served by Depot too), a blocking HTTP client with JSON
-- and multipart helpers, scratch dirs, and cleanup. Manual: docs/lua-api.md (depot.spec).
--
-- The spec's own Lua state is not one of the servers' worker states: it is a client of theirs,
-- on the command's main thread, where blocking is fine (see spec_client.cpp). What a spec sees
-- is exactly what an HTTP client sees; a server's Lua state cannot be reached from here.
local spec_server = require "spec_server"
local spec_client = require "spec_client"
local crypto = require "crypto"
local json = require "json"
local system = require "system"  -- lua-system, which busted itself runs on

local M = {}

-- Where the servers load service scripts from (`depot test --scripts`), and the stand-ins.
M.scripts_dir = spec_server.scripts_dir()
M.stubs_dir = spec_server.stubs_dir()

-- Everything started or made since the last cleanup, stopped or removed by it.
local servers, dirs = {}, {}

local Server = {}
Server.__index = Server

-- A service entry of the config: "hello" is { name = "hello" }.
local function service_entry(entry)
  if type(entry) == "string" then return { name = entry } end
  if type(entry) ~= "table" or type(entry.name) ~= "string" then
    error("depot.spec: each service is a name or a table with a name", 3)
  end
  return entry
end

-- depot.spec.start(config) → server. `config` has the shape of depot.json (services, limits,
-- threads, ...); services without `script` are the shipped ones of that name.
function M.start(config)
  if type(config) ~= "table" then error("depot.spec.start: config must be a table", 2) end
  local document = {}
  for key, value in pairs(config) do document[key] = value end
  local services = {}
  for i, entry in ipairs(config.services or {}) do services[i] = service_entry(entry) end
  document.services = setmetatable(services, json.array_mt)
  local ok, handle = pcall(spec_server.start, json.encode(document))
  if not ok then error(handle, 2) end
  local port = handle:port()
  local server = setmetatable({ handle = handle, port = port, url = "http://127.0.0.1:" .. port,
                                data_dir = handle:data_dir() }, Server)
  servers[#servers + 1] = server
  return server
end

-- depot.spec.stub(name [, mount]) → the service entry serving tests/stubs/<name> at `mount`.
function M.stub(name, mount)
  return { name = name, script = M.stubs_dir .. "/" .. name, mount = { mount or "/" } }
end

-- depot.spec.upstream(name [, config]) → a server of its own serving the stand-in `name` at "/".
function M.upstream(name, config)
  local document = { services = { M.stub(name) } }
  for key, value in pairs(config or {}) do document[key] = value end
  return M.start(document)
end

-- depot.spec.temp_dir() → path of a fresh empty directory, removed by cleanup.
function M.temp_dir()
  local dir = spec_server.scratch_dir()
  dirs[#dirs + 1] = dir
  return dir:path()
end

-- depot.spec.multipart(parts) → body, content_type. parts: { { name = "file", filename = "a.txt",
-- content = "...", content_type = "text/plain" }, { name = "field", content = "value" } }.
function M.multipart(parts)
  local boundary = "depot-spec-" .. crypto.hex(crypto.random_bytes(12))
  local out = {}
  for _, part in ipairs(parts) do
    local disposition = 'form-data; name="' .. part.name .. '"'
    if part.filename then disposition = disposition .. '; filename="' .. part.filename .. '"' end
    out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: " .. disposition .. "\r\n"
    if part.content_type then out[#out + 1] = "Content-Type: " .. part.content_type .. "\r\n" end
    out[#out + 1] = "\r\n" .. (part.content or "") .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

-- depot.spec.wait_for(condition [, timeout]) polls condition() until it returns a true value
-- (returned) or `timeout` seconds (5) pass (raises): for what a server does in the background.
function M.wait_for(condition, timeout)
  local deadline = system.monotime() + (timeout or 5)
  repeat
    local value = condition()
    if value then return value end
    system.sleep(0.05)
  until system.monotime() > deadline
  error(("depot.spec.wait_for: not true after %g seconds"):format(timeout or 5), 2)
end

local Response = {}
Response.__index = Response

-- response:json() → the decoded body; raises with the status and body when it is not JSON.
function Response:json()
  local value, err = json.decode(self.body)
  if value == nil then
    error(("depot.spec: the %d response is not JSON (%s): %s"):format(self.status, err, self.body:sub(1, 200)), 2)
  end
  return value
end

local request_options = { headers = true, body = true, json = true, multipart = true, timeout = true }

-- server:request(method, path [, opts]) → response {status, headers, body}. opts: headers,
-- body (a string), json (a value sent as JSON), multipart (parts, see depot.spec.multipart),
-- timeout (seconds, 30). A transfer that fails (refused, timed out) raises.
function Server:request(method, path, opts)
  opts = opts or {}
  for name in pairs(opts) do
    if not request_options[name] then error("depot.spec: server:request: unknown option " .. tostring(name), 2) end
  end
  local headers = {}
  for name, value in pairs(opts.headers or {}) do headers[name] = value end
  local body = opts.body
  if opts.json ~= nil then
    body = json.encode(opts.json)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  elseif opts.multipart then
    body, headers["Content-Type"] = M.multipart(opts.multipart)
  end
  local status, response_headers, response_body = spec_client.request(method, self.url .. path, headers, body,
                                                                      opts.timeout)
  if status == nil then error(response_headers, 2) end
  return setmetatable({ status = status, headers = response_headers, body = response_body }, Response)
end

for _, method in ipairs({ "get", "post", "put", "patch", "delete", "head" }) do
  Server[method] = function(self, path, opts) return self:request(method:upper(), path, opts) end
end

-- server:reload() loads the scripts again; raises with why when they are refused.
function Server:reload()
  local refused = self.handle:reload()
  if refused ~= "" then error("depot.spec: reload refused: " .. refused, 2) end
end

-- server:stop(): in-flight requests finish; the server's scratch data dir is removed.
function Server:stop()
  self.handle:stop()
end

-- depot.spec.cleanup() stops every server and removes every dir made since the last cleanup.
-- It runs by itself after each spec file, passed or failed; `depot test` closes whatever is left.
function M.cleanup()
  local stopping, removing = servers, dirs
  servers, dirs = {}, {}
  for i = #stopping, 1, -1 do stopping[i]:stop() end
  for _, dir in ipairs(removing) do dir:remove() end
end

local has_busted, busted = pcall(require, "busted")
if has_busted and type(busted) == "table" and busted.subscribe then
  busted.subscribe({ "file", "end" }, function()
    M.cleanup()
    return nil, true
  end)
end

return M
