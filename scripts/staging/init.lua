-- The data staging service, compatible with the SKAO staging service's API: stage a file or tree
-- from the source storage into a user's area (copy or symlink), stream it (direct download), or
-- push it into the user's Jupyter server; records of every request, progress of large copies,
-- the staging log, and the web page. See docs/services/staging.md.
local service = ...
-- With "auth": "users" in its config section, the ServiceX policy guards it (config/users.json).
require("users.policy").guard(service)
local fs = require "fs"
local json = require "json"
local copier = require "staging.copier"
local Journal = require "staging.journal"
local Jupyter = require "staging.jupyter"
local paths = require "staging.paths"
local Records = require "staging.records"
local utf8 = require "staging.utf8"
local validation = require "staging.validation"
local api = require "staging.openapi"

local settings = require("staging.settings").load(service)
local journal = Journal.new(settings.logging_level, settings.log_max_lines)
local records = Records.new(settings.records_max)
local hub = Jupyter.new(settings)
local web_dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/web"

-- FastAPI's shapes: {"detail": ...} for every error, the engine's own (404, 405, 413, 500) too.
service:on_error(function(status, message)
  if status == 404 then return { detail = "Not Found" } end
  if status == 405 then return { detail = "Method Not Allowed" } end
  if status == 500 then return { detail = "Internal Server Error" } end
  return { detail = message }
end)

local function allowed(method)
  for _, name in ipairs(settings.allowed_methods) do
    if name == method then return true end
  end
  return false
end

-- Python's repr of a (valid UTF-8) string, for the log lines the original printed from pydantic
-- models.
local function repr(text) return json.python_repr(json.encode({ text })):sub(2, -2) end

-- With the users guard on (config/users.json), a signed-in user who is not an admin stages for,
-- and reads the records of, one username only: their e-mail address, lower-cased (unique among
-- the users service's accounts, and JupyterHub's user name with most OAuth setups). Admins, routes
-- the guard leaves open, and a service without the guard (the original) are not restricted: nil.
local function own_username(req)
  local user = req.user
  if not user or user.admin then return nil end
  return user.email:lower()
end

local function not_yours(own, username)
  local detail = "Forbidden: you may only use your own username, " .. own
  journal:warning(detail .. " (asked for " .. username .. ")")
  return 403, { detail = detail }
end

local running_as_root
local function is_root()
  if running_as_root == nil then running_as_root = (fs.user() or {}).uid == 0 end
  return running_as_root
end

-- starlette's FileResponse header: a plain quoted name when quoting changes nothing, else the
-- RFC 5987 form.
local function content_disposition(name)
  local quoted = name:gsub("[^%w_%.%-~]", function(c) return string.format("%%%02X", c:byte()) end)
  if quoted == name then return 'attachment; filename="' .. name .. '"' end
  return "attachment; filename*=utf-8''" .. quoted
end

------------------------------------------------------------------------------------------------
-- POST /stage-data/ (every route also answers without its trailing slash: the router ignores it)

-- One staging request once validated: the checks in the original's order, each outcome logged
-- and recorded. Returns status, body (or nothing when it already answered through res).
local function stage(res, method, username, item, user_token)
  local record = records:start({ username = username, method = method,
    source = item.local_path_on_storage, target = item.relative_path })
  local shown = {}  -- the paths as the original named them, stored with the outcome
  local function refuse(status, detail)
    journal:error(detail)
    shown.error = detail
    records:finish(record, "failed", shown)
    return status, { detail = detail }
  end
  local function staged(message, bytes)
    shown.bytes, shown.message = bytes or 0, message
    records:finish(record, "success", shown)
    return { status = "success", message = message }
  end

  local function checks()
    if not allowed(method) then
      journal:warning("Invalid method: " .. method)
      return refuse(400, "Invalid staging method: " .. method)
    end
    if not paths.valid_username(username) then return refuse(400, "Invalid username: " .. username) end

    local hub_user
    if method == "jupyter_copy" then
      local status, detail
      hub_user, status, detail = hub:check_user(username)
      if not hub_user then return refuse(status, detail) end
    end

    journal:debug("Loaded Source Storage: " .. settings.source)
    journal:debug("Loaded Target Storage: " .. settings.target)
    local shown_source = paths.joined(settings.source, item.local_path_on_storage)
    local source, refused = paths.under(settings.source, item.local_path_on_storage)
    if not source then return refuse(400, "Invalid source path: " .. shown_source .. " (" .. refused .. ")") end
    local source_status = fs.stat(source, { follow = true })
    if not source_status then return refuse(400, "Source path does not exist: " .. shown_source) end
    shown.source = shown_source

    if method == "direct_download" then
      if source_status.type ~= "file" then
        return refuse(500, "Error during direct download: " .. shown_source .. " is not a file")
      end
      staged("Data sent to user " .. username .. " with method direct_download", source_status.size)
      journal:info("Direct download of " .. shown_source .. " for user " .. username)
      assert(res:file(source, { content_type = "application/octet-stream",
        headers = { ["Content-Disposition"] = content_disposition(source:match("[^/]*$")) } }))
      return
    end

    if method == "jupyter_copy" then
      local relative = item.relative_path
      if relative:sub(1, 1) == "/" or relative:match("^%s*$") or ("/" .. relative .. "/"):find("/%.%./") then
        return refuse(400, "Invalid relative path: " .. relative)
      end
      local bytes, status, detail = hub:copy(hub_user, username, source, relative, user_token)
      if not bytes then return refuse(status, detail) end
      journal:info("Data staged successfully for user " .. username .. " with method " .. method)
      return staged("Data staged for user " .. username .. " with method " .. method, bytes)
    end

    if method ~= "local_copy" and method ~= "local_symlink" then
      return refuse(500, "Unexpected error: '" .. method .. "'")  -- listed in ALLOWED_METHODS, not built
    end
    local user_area = settings.target .. "/" .. username
    assert(fs.mkdir(user_area))
    local area_status = fs.stat(user_area)
    if not (area_status and area_status.type == "directory") then
      return refuse(400, "Invalid user area: " .. user_area .. " is not a directory")
    end
    journal:debug("User area created: " .. user_area)
    local shown_target = paths.joined(user_area, item.relative_path)
    local parent, name = paths.new_entry(user_area, item.relative_path)
    if not parent then return refuse(400, "Invalid relative path: " .. item.relative_path .. " (" .. name .. ")") end
    shown.target = shown_target
    journal:debug("Processing " .. shown_source .. " -> " .. shown_target)
    assert(fs.mkdir(parent))
    if fs.exists(parent .. "/" .. name) then
      journal:info("Data is already available at " .. shown_target)
      return staged("Data already available at " .. shown_target)
    end

    local owner = is_root() and fs.user(username) or nil
    if is_root() and not owner then
      journal:warning("User " .. username .. " does not exist; the staged data keeps the server's owner")
    end
    local bytes = 0
    if method == "local_copy" then
      local problem
      bytes, problem = copier.copy({ settings = settings, records = records, record = record,
        source_root = assert(fs.confine(settings.source, ".")), source = source,
        parent = parent, name = name, owner = owner })
      if not bytes then return refuse(problem.status, problem.detail) end
      journal:debug("Set read-only permissions for " .. shown_target)
    else
      -- The link only: the source is never chmodded nor chowned (the original's set_read_only
      -- followed the link and changed the source).
      local ok, err = fs.symlink(source, parent .. "/" .. name)
      if not ok then return refuse(500, "Unexpected error: " .. err:gsub("^fs%.symlink: ", "")) end
    end
    journal:debug("Applied method " .. method .. " on " .. shown_source)
    journal:info("Data staged successfully for user " .. username .. " with method " .. method)
    return staged("Data staged for user " .. username .. " with method " .. method, bytes)
  end

  local ok, status, answer = pcall(checks)
  if ok then return status, answer end
  if type(status) == "table" then  -- an answer of the engine's (a deadline): recorded, passed on
    shown.error = tostring(status)
    records:finish(record, "failed", shown)
    error(status, 0)
  end
  return refuse(500, "Unexpected error: " .. tostring(status))
end

service:route("POST", "/stage-data/", function(req, res)
  local errors = {}
  local query = validation.query(req, { "method", "username" }, errors)
  local body, status, detail = validation.body(req)
  if status then return status, { detail = detail } end
  local item = validation.staging_request(body, errors)
  if #errors > 0 then return 422, { detail = errors } end
  local method, username = utf8.valid(query.method), utf8.valid(query.username)
  item.local_path_on_storage, item.relative_path = utf8.valid(item.local_path_on_storage), utf8.valid(item.relative_path)
  local own = own_username(req)
  if own and username ~= own then return not_yours(own, username) end
  journal:info(string.format("Received request with method=%s, username=%s, data=local_path_on_storage=%s relative_path=%s",
    method, username, repr(item.local_path_on_storage), repr(item.relative_path)))
  return stage(res, method, username, item, req.query.jupyter_token)
end, api.stage)

------------------------------------------------------------------------------------------------
-- Records

local function parse_limit(text, errors)
  if text == nil then return 100 end
  local number = tonumber(text)
  if not (number and number == math.floor(number) and text:match("^%s*[+-]?%d+%s*$")) then
    errors[#errors + 1] = { type = "int_parsing", loc = setmetatable({ "query", "limit" }, json.array_mt),
      msg = "Input should be a valid integer, unable to parse string as an integer", input = text,
      url = "https://errors.pydantic.dev/2.10/v/int_parsing" }
    return nil
  end
  return math.max(1, math.min(number, 1000))
end

service:route("GET", "/stage-data/records", function(req)
  local errors = {}
  local limit = parse_limit(req.query.limit, errors)
  if #errors > 0 then return 422, { detail = errors } end
  local function filter(value) return value ~= "" and value and utf8.valid(value) or nil end
  local username, own = filter(req.query.username), own_username(req)
  if own and username and username ~= own then return not_yours(own, username) end
  return { records = records:list(username or own, filter(req.query.status), limit) }
end, api.records)

service:route("GET", "/stage-data/records/:id", function(req)
  local record = Records.valid_id(req.params.id) and records:get(req.params.id)
  local own = own_username(req)
  -- Another user's record is answered as missing: its existence is not theirs to know either.
  if not record or (own and record.username ~= own) then return 404, { detail = "Record not found" } end
  return record
end, api.record)

------------------------------------------------------------------------------------------------
-- Logs, configuration, files

service:route("GET", "/logs/", function()
  local text = journal:text()
  if not text then return 404, { detail = "Log file not found" } end
  return 200, text, { ["Content-Type"] = "text/plain; charset=utf-8" }
end, api.logs)

service:route("GET", "/config/", function()
  return { source_storage_path = settings.source, target_storage_path = settings.target,
           allowed_methods = settings.allowed_methods }
end, api.config)

service:route("GET", "/config/allowed-methods/", function()
  return { allowed_methods = settings.allowed_methods }
end, api.allowed_methods)

api.create_file.max_body_bytes = settings.create_file_max_bytes
service:route("POST", "/create-file/", function(req)
  local errors = {}
  local body, status, detail = validation.body(req, settings.create_file_max_bytes)
  if status then return status, { detail = detail } end
  local fields = validation.embedded_strings(body, { "filename", "content" }, errors)
  if #errors > 0 then return 422, { detail = errors } end
  fields.filename = utf8.valid(fields.filename)
  local shown = paths.joined(settings.source, fields.filename)
  local path, refused = paths.under(settings.source, fields.filename)
  if not path then
    local message = "Invalid file name: " .. fields.filename .. " (" .. refused .. ")"
    journal:error(message)
    return 400, { detail = message }
  end
  local ok, err = fs.write(path, fields.content)
  if not ok then
    local message = "Failed to create file: " .. err:gsub("^fs%.write: ", "")
    journal:error(message)
    return 500, { detail = message }
  end
  local message = "File '" .. fields.filename .. "' created successfully in " .. shown .. "."
  journal:info(message)
  return { status = "success", message = message }
end, api.create_file)

------------------------------------------------------------------------------------------------
-- The web page (scripts/staging/web/), at the mount root

local function send_page_file(res, relative)
  local path = fs.confine(web_dir, relative)
  if not (path and res:file(path)) then return 404, { detail = "Not Found" } end
end

-- The page's links are relative ("web/app.js"): under a prefix it must be loaded as "/staging/",
-- not "/staging", or they would resolve outside the mount.
service:route("GET", "/", function(req, res)
  local path, query = req.target:match("^([^?]*)(.*)$")
  if path:sub(-1) ~= "/" then return 307, "", { Location = path .. "/" .. query } end
  return send_page_file(res, "index.html")
end, api.page)
service:route("GET", "/web/*file", function(req, res) return send_page_file(res, req.params.file) end, api.page_file)

service:on_start(function() journal:info("Staging service started") end)

-- Last: a service that failed to load must not have claimed its mounts' API pages.
require("openapi").serve(service, api.info)
