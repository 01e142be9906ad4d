-- The Lua half of the engine, run first in every Lua state: services and their routes, the
-- request and response objects handed to handlers, and turning handler results and errors into
-- responses. The C++ half (engine/lua_exchange.cpp) passes its primitives in as `core`.
local core = ...

local json -- loaded on first use: scripts that never send JSON never pay for it
local function json_module()
  json = json or require("json")
  return json
end

local M = {}
local services = {}

------------------------------------------------------------------------------------------------
-- Errors

-- Raised by depot.fail(): an error that is an HTTP answer, not a bug.
local HttpError = {}
HttpError.__index = HttpError
HttpError.__tostring = function(e) return string.format("HTTP %d: %s", e.status, e.message) end

local function fail(status, message, headers)
  core.check_response(status, headers, "depot.fail")
  error(setmetatable({ status = status, message = message or "", headers = headers }, HttpError), 2)
end
M.fail = fail

local function default_error_body(status, message, request_id)
  return { error = message, status = status, request_id = request_id }
end

-- status, body (string), headers for an error answered by `service` (or the engine default).
local function render_error(service, status, message, request_id, extra_headers)
  local body, headers = nil, { ["Content-Type"] = "application/json" }
  local handler = service and service.error_handler
  if handler then
    local custom_status, custom_body, custom_headers = handler(status, message, { id = request_id })
    if type(custom_status) == "number" then
      status, body = custom_status, custom_body
      if custom_headers then headers = custom_headers end
    else
      body = custom_status
    end
  end
  if body == nil then body = default_error_body(status, message, request_id) end
  if type(body) == "table" then
    body = json_module().encode(body)
  else
    body = tostring(body)
    if not (handler and headers["Content-Type"] ~= "application/json") then
      headers["Content-Type"] = "text/plain; charset=utf-8"
    end
  end
  if extra_headers then
    for name, value in pairs(extra_headers) do headers[name] = value end
  end
  -- An on_error handler answering with a bad status or header gets the engine's own 500 instead
  -- (logged): an error answer must not fail in its turn.
  local valid, problem = pcall(core.check_response, status, headers, "service:on_error")
  if not valid then
    core.log_error(request_id, problem)
    status, headers = 500, { ["Content-Type"] = "application/json" }
    body = json_module().encode(default_error_body(500, "internal server error", request_id))
  end
  return status, body, headers
end

-- Called by the engine (in the main state, never yields) for 404 / 405 and other answers it
-- gives without running a handler.
function M.render_error(service_index, status, message, request_id, allowed)
  local extra = allowed and { Allow = allowed } or nil
  return render_error(services[service_index], status, message, request_id, extra)
end

------------------------------------------------------------------------------------------------
-- Requests

local Request = {}
Request.__index = function(req, key)
  local method = Request[key]
  if method then return method end
  if key == "query" then
    local query = core.parse_query(core.query_string(req._exchange))
    rawset(req, "query", query)
    return query
  elseif key == "headers" then
    local headers = core.headers(req._exchange)
    rawset(req, "headers", headers)
    return headers
  elseif key == "remote_addr" then
    return core.remote_address(req._exchange)
  elseif key == "target" then
    return core.target(req._exchange)
  elseif key == "http_version" then
    return core.http_version(req._exchange)
  end
  return nil
end

-- The first value of a request header; `name` is case-insensitive.
function Request:header(name) return core.header(self._exchange, name) end

-- The next chunk of the body, nil at its end, or nil and an error ("client closed the connection").
function Request:read() return core.read(self._exchange) end

-- The whole body as one string, at most `limit` bytes (default: the server's max_body_bytes);
-- a larger body fails the request with 413. Later calls return the same string.
function Request:body(limit)
  local cached = rawget(self, "_body")
  if cached then return cached end
  local body, err = core.body(self._exchange, limit or self._route.options.max_body_bytes)
  if body == nil and err then fail(err == "too large" and 413 or 400, "request body " .. err) end
  rawset(self, "_body", body)
  return body
end

-- The body decoded as JSON; a malformed body fails the request with 400.
function Request:json(limit)
  local text = self:body(limit)
  local value, err = json_module().decode(text)
  if value == nil and err then fail(400, "invalid JSON body: " .. err) end
  return value
end

-- The pipe of a writer that is not an fs writer (core.pipe_* answered false): chunk by chunk
-- through writer:write, with the results core.pipe_* gives.
local function pipe_through_write(read, source, writer, limit)
  local bytes = 0
  while true do
    local chunk, err = read(source)
    if err then return nil, err, "request" end
    if not chunk then return bytes end
    if limit and bytes + #chunk > limit then return nil, "too large", "request" end
    local ok, write_error = writer:write(chunk)
    if not ok then return nil, write_error, "writer" end
    bytes = bytes + #chunk
  end
end

-- The rest of the body into `writer`: `bytes` or `nil, err, origin` (docs/lua-api.md).
function Request:pipe(writer, options)
  local bytes, err, origin = core.pipe_body(self._exchange, writer, options)
  if bytes ~= false then return bytes, err, origin end
  return pipe_through_write(self.read, self, writer, err)
end

local Part = {}
Part.__index = Part
-- The next chunk of this part's data, nil at the part's end.
function Part:read() return core.read_part(self._exchange) end
-- The rest of this part's data into `writer`, as req:pipe.
function Part:pipe(writer, options)
  local bytes, err, origin = core.pipe_part(self._exchange, writer, options)
  if bytes ~= false then return bytes, err, origin end
  return pipe_through_write(self.read, self, writer, err)
end
-- The whole part as a string (small form fields; files should be read chunk by chunk).
function Part:text()
  local pieces = {}
  for chunk in self.read, self do pieces[#pieces + 1] = chunk end
  return table.concat(pieces)
end

-- Iterates over a multipart/form-data body: `for part in req:parts() do ... end`. Each part has
-- name, filename, content_type and headers; its data is read with part:read() before the next.
function Request:parts()
  return function()
    local part, err = core.next_part(self._exchange)
    if part == nil then
      if err then fail(400, err) end
      return nil
    end
    part._exchange = self._exchange
    return setmetatable(part, Part)
  end
end

------------------------------------------------------------------------------------------------
-- Responses

local Response = {}
Response.__index = Response

-- The text of a body and the Content-Type it gets unless the headers name one.
local function encode_body(body)
  if type(body) == "table" then return json_module().encode(body), "application/json" end
  if body == nil then return "", nil end
  return tostring(body), "text/plain; charset=utf-8"
end

-- `what` names the call in errors.
local function send(res, status, body, headers, what)
  local text, content_type = encode_body(body)
  core.send(res._exchange, status, headers, text, content_type, what)
end

-- Sends a complete response. `body` is a string, or a table sent as JSON.
function Response:send(status, body, headers) send(self, status, body, headers, "res:send") end

function Response:json(status, value, headers)
  core.send(self._exchange, status, headers, json_module().encode(value), "application/json", "res:json")
end

-- Sets a header on the response that has not started yet.
function Response:header(name, value) core.set_header(self._exchange, name, value) end

-- Starts a streamed response (chunked, or framed by options.length); then res:write(chunk) (waits
-- while the client is slow) and res:finish().
function Response:start(status, headers, options)
  core.start(self._exchange, status or 200, headers, options)
end
function Response:write(chunk) return core.write(self._exchange, chunk) end
function Response:finish() core.finish(self._exchange) end

-- Sends a file with sendfile: Content-Length, Range (206/416), ETag / Last-Modified (304), HEAD.
-- options: content_type, headers, download_name (Content-Disposition: attachment).
-- Returns nil, "not found" when the file does not exist (nothing is sent then).
function Response:file(path, options) return core.file(self._exchange, path, options or {}) end

function Response:started() return core.response_started(self._exchange) end

------------------------------------------------------------------------------------------------
-- Services

local Service = {}
Service.__index = Service

local function is_mount_of(service, prefix)
  for _, mount in ipairs(service.mounts or {}) do
    if mount == prefix then return true end
  end
  return false
end

-- Registers a route. `options.max_body_bytes` raises req:body()'s limit for this route;
-- `options.deadline` (seconds, 0: none) replaces limits.request_deadline for it;
-- `options.mounts` (some of the service's mounts) registers it under those only;
-- `options.before = false` skips the service's before filters. The openapi module reads the
-- documentation options (summary, parameters, body, responses).
function Service:route(method, pattern, handler, options)
  assert(type(method) == "string", "route: method must be a string")
  assert(type(pattern) == "string" and pattern:sub(1, 1) == "/", "route: pattern must start with /")
  assert(type(handler) == "function", "route: handler must be a function")
  options = options or {}
  assert(options.deadline == nil or (type(options.deadline) == "number" and options.deadline >= 0),
    "route: options.deadline must be a number of seconds (0: none)")
  if options.mounts ~= nil then
    assert(type(options.mounts) == "table", "route: options.mounts must be a list of the service's mounts")
    for _, prefix in ipairs(options.mounts) do
      assert(is_mount_of(self, prefix), "route: options.mounts: " .. tostring(prefix) .. " is not a mount of " .. self.name)
    end
  end
  options.max_body_bytes = options.max_body_bytes or core.max_body_bytes
  self.routes[#self.routes + 1] = { method = method:upper(), pattern = pattern, handler = handler, options = options }
end

for _, method in ipairs({ "get", "post", "put", "patch", "delete", "head", "options" }) do
  Service[method] = function(self, pattern, handler, options)
    return self:route(method:upper(), pattern, handler, options)
  end
end
function Service:any(pattern, handler, options) return self:route("*", pattern, handler, options) end

-- fn(status, message, info) → body table/string, or status, body, headers: this service's
-- shape for errors (404, 405, 413, 500, and depot.fail()).
function Service:on_error(fn) self.error_handler = fn end

-- fn(req, res) runs before every handler of this service; if it sends a response (or fails),
-- the handler is skipped. Policies (authentication) are written this way.
function Service:before(fn) self.filters[#self.filters + 1] = fn end

-- fn() runs when this generation of the scripts starts serving: once, on worker 0, unless
-- options.all_workers. It runs as a task, so it may wait.
function Service:on_start(fn, options)
  self.start_hooks[#self.start_hooks + 1] = { fn = fn, all_workers = options and options.all_workers }
end

-- fn(arguments) runs for `depot admin <name> [arguments...]`, in a Lua state of its own (no
-- server: bindings block instead of waiting), against the same data dir as a running server.
-- It reports with print(); raising an error makes the command exit non-zero.
function Service:command(name, fn) self.commands[name] = fn end

function M.new_service(name, config, mounts)
  local service = setmetatable({
    name = name, config = config, mounts = mounts,
    routes = {}, filters = {}, start_hooks = {}, commands = {},
  }, Service)
  services[#services + 1] = service
  return service, #services
end

function M.services() return services end

------------------------------------------------------------------------------------------------
-- Dispatch

local function finalize(res, status, body, headers)
  if core.response_started(res._exchange) then
    if core.response_streaming(res._exchange) then core.finish(res._exchange) end
    return
  end
  if status == nil then
    core.send(res._exchange, 204, nil, "")
  elseif type(status) == "number" then
    send(res, status, body, headers, "the handler's returned response")
  else
    send(res, 200, status, body, "the handler's returned response")
  end
end

local traceback = debug.traceback

local function handle_error(service, req, res, err)
  local status, message, headers = 500, "internal server error", nil
  if getmetatable(err) == HttpError then
    status, message, headers = err.status, err.message, err.headers
  else
    core.log_error(req.id, tostring(err))
  end
  if core.client_gone(res._exchange) then return end
  if core.response_started(res._exchange) then
    core.abort_response(res._exchange) -- the head is out: closing is the only honest signal
    return
  end
  local out_status, body, out_headers = render_error(service, status, message, req.id, headers)
  core.send(res._exchange, out_status, out_headers, body)
end

local function error_with_traceback(err)
  if getmetatable(err) == HttpError then return err end
  return traceback(tostring(err), 2)
end

local function run_handler(service, route, req, res)
  for i = 1, route.options.before == false and 0 or #service.filters do
    local status, body, headers = service.filters[i](req, res)
    if status ~= nil or core.response_started(res._exchange) then
      return finalize(res, status, body, headers)
    end
  end
  return finalize(res, route.handler(req, res))
end

-- Entry point of every request task.
function M.dispatch(service_index, route_index, exchange, method, path, request_id, params)
  local service = services[service_index]
  local route = service.routes[route_index]
  local req = setmetatable({
    _exchange = exchange, _route = route, method = method, path = path, id = request_id,
    params = params, service = service,
  }, Request)
  local res = setmetatable({ _exchange = exchange }, Response)
  local ok, err = xpcall(run_handler, error_with_traceback, service, route, req, res)
  if not ok then handle_error(service, req, res, err) end
end

-- Runs the on_start hooks of every service for this worker (as one task per hook).
function M.start_hooks(worker_index)
  local hooks = {}
  for _, service in ipairs(services) do
    for _, hook in ipairs(service.start_hooks) do
      if worker_index == 0 or hook.all_workers then hooks[#hooks + 1] = hook.fn end
    end
  end
  return hooks
end

-- Runs the admin command `name` of every service defining it; returns how many did.
function M.run_command(name, arguments)
  local ran = 0
  for _, service in ipairs(services) do
    local command = not service.disabled and service.commands[name]
    if command then
      command(arguments)
      ran = ran + 1
    end
  end
  return ran
end

-- { {service name, key}, ... }: the keys of mounted services' config sections that no config
-- getter looked up while the scripts loaded (bindings/config.lua).
function M.unread_settings()
  local unread = {}
  local config = require("config")
  for _, service in ipairs(services) do
    if not service.disabled and type(service.config) == "table" then
      for _, key in ipairs(config.unread(service.config)) do unread[#unread + 1] = { service.name, key } end
    end
  end
  return unread
end

-- Runs fn(...) and logs an error with its traceback instead of raising (timer and hook tasks).
function M.run_logged(what, fn, ...)
  local ok, err = xpcall(fn, error_with_traceback, ...)
  if not ok then core.log_error(nil, what .. ": " .. tostring(err)) end
end

return M
