-- jupyter_copy: a file into a user's Jupyter server through JupyterHub. The hub API is
-- <JUPYTERHUB_URL>/hub/api, called with the admin token (JUPYTERHUB_API_TOKEN); a stopped server
-- is started and its progress event stream followed until it is ready; the file then goes through
-- the Jupyter server's contents API, <JUPYTERHUB_URL>/user/<u>/api/contents/<path>, with the
-- user's own token when the request gave one, else a token the hub mints for that user for this
-- copy (expiring soon, limited to their servers, revoked after the copy). The admin token never
-- goes to the user's server: that server runs code the user controls. Fixed from the original:
-- its doubled /hub/api and wrong contents URL, its server name, its text-only upload ("format":
-- "base64" for anything not UTF-8 text) and its "Authorization: token None".
local crypto = require "crypto"
local fs = require "fs"
local http = require "http"
local json = require "json"

local M = {}
M.__index = M

-- Seconds a minted token lives if its revocation is lost: one copy's worth of contents calls.
local MINTED_TOKEN_SECONDS = 600

-- requests' HTTPError text needs the reason phrase.
local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

-- Raised inside, caught in M:copy: a detail for the client and its status.
local Failure = {}
local function fail(status, detail) error(setmetatable({ status = status, detail = detail }, Failure), 0) end

function M.new(settings)
  return setmetatable({ settings = settings, api = settings.hub_url .. "/hub/api" }, M)
end

local function escape_segment(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function escape_path(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do parts[#parts + 1] = escape_segment(part) end
  return table.concat(parts, "/")
end

local function authorization(token)
  if token == nil or token == "" then return {} end
  return { Authorization = "token " .. token }
end

function M:request(method, url, token, body, timeout)
  local headers = authorization(token)
  if body then headers["Content-Type"] = "application/json" end
  return http.request(method, url, {
    headers = headers, body = body and json.encode(body),
    timeout = timeout or self.settings.hub_timeout,
  })
end

-- As requests' raise_for_status() words it.
local function http_error_text(status, url)
  local kind = status < 500 and "Client Error" or "Server Error"
  return string.format("%d %s: %s for url: %s", status, kind, REASONS[status] or "", url)
end

-- The hub's model of the user, or fail(500, "Failed to fetch user status: ...").
function M:user(username)
  local url = self.api .. "/users/" .. escape_segment(username)
  local response, err = self:request("GET", url, self.settings.hub_token)
  if not response then fail(500, "Failed to fetch user status: " .. err) end
  if response.status < 200 or response.status >= 300 then
    fail(500, "Failed to fetch user status: " .. http_error_text(response.status, url))
  end
  local user = json.decode(response.body)
  if type(user) ~= "table" then fail(500, "Failed to fetch user status: the hub answered no user model") end
  return user
end

local function default_server(user)
  local servers = type(user.servers) == "table" and user.servers or {}
  return type(servers[""]) == "table" and servers[""] or nil
end

-- Whether the hub's progress stream ("data: {json}" events) ended with the server ready.
local function progress_ready(stream)
  local ready = false
  for payload in stream:gmatch("data:%s*([^\r\n]*)") do
    local event = json.decode(payload)
    if type(event) == "table" then
      if event.failed == true then return false end
      if event.ready == true then ready = true end
    end
  end
  return ready
end

-- Starts the user's default server and waits until the hub says it is ready.
function M:start_server(username)
  local base = self.api .. "/users/" .. escape_segment(username) .. "/server"
  local response = self:request("POST", base, self.settings.hub_token, nil)
  local not_ready = "Failed to start or verify readiness of server for user " .. username .. "."
  if not response or (response.status ~= 201 and response.status ~= 202 and response.status ~= 400) then
    fail(500, "Unexpected error: " .. not_ready)
  end
  -- 202: spawning; the progress stream ends once the spawn has finished one way or the other.
  if response.status == 202 then
    local progress = self:request("GET", base .. "/progress", self.settings.hub_token, nil,
      self.settings.spawn_timeout)
    if not progress or progress.status ~= 200 or not progress_ready(progress.body) then
      fail(500, "Unexpected error: " .. not_ready)
    end
  end
  local server = default_server(self:user(username))
  if not (server and server.ready == true) then fail(500, "Unexpected error: " .. not_ready) end
end

-- GET of a contents path: true when something is there.
function M:exists(contents, path, token)
  local response, err = self:request("GET", contents .. "/" .. escape_path(path) .. "?content=0", token)
  if not response then fail(500, "Unexpected error: " .. err) end
  return response.status == 200
end

function M:put(contents, path, token, model)
  local response, err = self:request("PUT", contents .. "/" .. escape_path(path), token, model)
  if not response then fail(500, "Unexpected error: " .. err) end
  if response.status ~= 200 and response.status ~= 201 then
    fail(500, "Unexpected error: Failed to copy file: " .. response.status .. " - " .. response.body)
  end
end

-- A token for `username`'s own server from the hub (POST /hub/api/users/<u>/tokens, as the admin),
-- and its id for the revocation.
function M:mint_token(username)
  local url = self.api .. "/users/" .. escape_segment(username) .. "/tokens"
  local response, err = self:request("POST", url, self.settings.hub_token, {
    expires_in = MINTED_TOKEN_SECONDS, note = "depot staging: jupyter_copy",
    scopes = setmetatable({ "access:servers!user=" .. username }, json.array_mt),
  })
  local failed = "Unexpected error: Failed to get a token for the server of user " .. username .. ": "
  if not response then fail(500, failed .. err) end
  local model = (response.status == 200 or response.status == 201) and json.decode(response.body)
  if not (type(model) == "table" and type(model.token) == "string" and model.token ~= "") then
    fail(500, failed .. http_error_text(response.status, url))
  end
  return model.token, model.id
end

-- Best effort: the token expires by itself anyway.
function M:revoke_token(username, id)
  if type(id) ~= "string" and type(id) ~= "number" then return end
  self:request("DELETE", self.api .. "/users/" .. escape_segment(username) .. "/tokens/" .. escape_segment(tostring(id)),
    self.settings.hub_token)
end

-- Checks the user on the hub (the original does this before looking at the source path).
function M:check_user(username)
  local ok, err = pcall(self.user, self, username)
  if ok then return err end
  if getmetatable(err) == Failure then return nil, err.status, err.detail end
  error(err, 0)
end

-- Copies the file `source` to `relative_path` in the user's Jupyter server. `user` is the hub's
-- model from check_user. Returns bytes copied (0 when the file was already there) or nil,
-- status, detail.
function M:copy(user, username, source, relative_path, user_token)
  local minted_id
  local ok, result = pcall(function()
    local status = fs.stat(source, { follow = true })
    if not status or status.type ~= "file" then
      fail(400, "jupyter_copy copies a single file: " .. source .. " is not a file")
    end
    if status.size > self.settings.jupyter_max_bytes then
      fail(400, "File too large for jupyter_copy: " .. source .. " (at most " ..
        self.settings.jupyter_max_bytes .. " bytes)")
    end
    local server = default_server(user)
    if not (server and server.ready == true) then self:start_server(username) end
    local token = user_token
    if token == nil or token == "" then token, minted_id = self:mint_token(username) end
    local contents = self.settings.hub_url .. "/user/" .. escape_segment(username) .. "/api/contents"
    local path = relative_path:gsub("^/+", ""):gsub("/+$", "")
    if self:exists(contents, path, token) then return 0 end
    -- Missing parent directories first, outermost first.
    local parent = ""
    for part in path:gmatch("([^/]+)/") do
      parent = parent == "" and part or parent .. "/" .. part
      if not self:exists(contents, parent, token) then
        self:put(contents, parent, token, { type = "directory" })
      end
    end
    local data = assert(fs.read(source, self.settings.jupyter_max_bytes))
    local model = { type = "file", format = "text", content = data }
    if not pcall(json.encode, data) or data:find("\0", 1, true) then
      model.format, model.content = "base64", crypto.base64(data)
    end
    self:put(contents, path, token, model)
    return #data
  end)
  if minted_id then self:revoke_token(username, minted_id) end
  if ok then return result end
  if getmetatable(result) == Failure then return nil, result.status, result.detail end
  return nil, 500, "Unexpected error: " .. tostring(result)
end

return M
