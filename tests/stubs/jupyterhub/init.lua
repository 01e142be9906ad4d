-- A stand-in for JupyterHub and its users' Jupyter servers, served by Depot in the staging tests.
-- Mounted at a prefix that plays the hub's base URL:
--   GET  /hub/api/users/:name                 the user model (servers[""].ready); 404 unknown
--   POST /hub/api/users/:name/server          202, spawning ("carol"'s spawn fails)
--   GET  /hub/api/users/:name/server/progress the spawn's event stream ("data: {json}" lines)
--   POST /hub/api/users/:name/tokens          201, a new token for the user's servers (its model)
--   DELETE /hub/api/users/:name/tokens/:id    204, the token revoked
--   GET|PUT /user/:name/api/contents/*path    the contents API, files and directories kept in kv
--   GET  /calls                               how many requests each route had, for assertions
--   GET  /tokens                              every token minted: user, request body, revoked
-- Users: "alice" (running), "bob" (stopped; spawns fine), "carol" (stopped; spawn fails); any
-- other name is unknown. The hub API wants "Authorization: token admin-token"; the contents API
-- takes the user's own "user-token-<name>" or a token minted for them, and refuses the admin
-- token (counted as "contents_admin_token": it must never reach a user's server).
local crypto = require "crypto"
local json = require "json"
local kv = require "kv"
local service = ...

local ADMIN = "token admin-token"
-- Counted and stored in kv: each worker thread runs its own copy of this script.
local state = kv.open("jupyterhub_stub", { durable = false })
local INITIAL = { alice = true, bob = false, carol = false }

local function count(name)
  state:update(function(tx) tx:put("calls:" .. name, (tx:get("calls:" .. name) or 0) + 1) end)
end

local function running(name)
  local value = state:get("running:" .. name)
  if value == nil then return INITIAL[name] end
  return value
end

local function user_model(name)
  local servers = setmetatable({}, json.object_mt)
  if running(name) then servers[""] = { name = "", ready = true, url = "/user/" .. name .. "/" } end
  return { name = name, kind = "user", admin = false, servers = servers }
end

local function hub_call(req, route)
  count(route)
  if req:header("Authorization") ~= ADMIN then return nil, 403 end
  local name = req.params.name
  if INITIAL[name] == nil then return nil, 404 end
  return name
end

service:get("/hub/api/users/:name", function(req)
  local name, status = hub_call(req, "user")
  if not name then return status, { status = status, message = status == 404 and "Not Found" or "Forbidden" } end
  return user_model(name)
end)

service:post("/hub/api/users/:name/server", function(req)
  local name, status = hub_call(req, "spawn")
  if not name then return status, { status = status, message = "Not Found" } end
  if running(name) then return 400, { status = 400, message = name .. " is already running" } end
  return 202, ""
end)

service:get("/hub/api/users/:name/server/progress", function(req)
  local name, status = hub_call(req, "progress")
  if not name then return status, { status = status, message = "Not Found" } end
  local events = {
    { progress = 10, message = "Spawning server..." },
    { progress = 50, message = "Server requested" },
  }
  if name == "carol" then
    events[#events + 1] = { progress = 100, failed = true, message = "Spawn failed: no resources" }
  else
    state:put("running:" .. name, true)
    events[#events + 1] = { progress = 100, ready = true, message = "Server ready at /user/" .. name .. "/",
                            url = "/user/" .. name .. "/" }
  end
  local lines = {}
  for i, event in ipairs(events) do lines[i] = "data: " .. json.encode(event) .. "\n\n" end
  return 200, table.concat(lines), { ["Content-Type"] = "text/event-stream" }
end)

service:post("/hub/api/users/:name/tokens", function(req)
  local name, status = hub_call(req, "token")
  if not name then return status, { status = status, message = "Not Found" } end
  local asked = json.decode(req:body())
  local token = { id = "a" .. crypto.hex(crypto.random_bytes(4)), token = crypto.hex(crypto.random_bytes(16)),
                  user = name }
  state:put("token:" .. token.token, token)
  state:put("minted:" .. token.id, { token = token.token, user = name, asked = asked, revoked = false })
  return 201, token
end)

service:delete("/hub/api/users/:name/tokens/:id", function(req)
  local name, status = hub_call(req, "revoke")
  if not name then return status, { status = status, message = "Not Found" } end
  local minted = state:get("minted:" .. req.params.id)
  if not minted or minted.revoked then return 404, { status = 404, message = "Not Found" } end
  state:delete("token:" .. minted.token)
  minted.revoked = true
  state:put("minted:" .. req.params.id, minted)
  return 204, ""
end)

service:get("/tokens", function()
  local minted = setmetatable({}, json.array_mt)
  for _, row in ipairs(state:iter({ prefix = "minted:" })) do
    minted[#minted + 1] = { user = row.value.user, asked = row.value.asked, revoked = row.value.revoked }
  end
  return minted
end)

local function minted_for(authorization, name)
  local token = authorization and state:get("token:" .. (authorization:match("^token (.+)$") or ""))
  return token ~= nil and token.user == name
end

local function contents_call(req)
  count("contents_" .. req.method:lower())
  local name = req.params.name
  local authorization = req:header("Authorization")
  if authorization == ADMIN then
    count("contents_admin_token")
    return nil, 403
  end
  if authorization ~= "token user-token-" .. name and not minted_for(authorization, name) then return nil, 403 end
  if not running(name) then return nil, 503 end
  return name, (req.params.path or ""):gsub("/+$", "")
end

local function parent_of(path) return path:match("^(.*)/[^/]*$") or "" end

service:get("/user/:name/api/contents/*path", function(req)
  local name, path = contents_call(req)
  if not name then return path, { message = "refused" } end
  local model = state:get("file:" .. name .. ":" .. path)
  if not model then return 404, { message = "No such file or directory: " .. path } end
  return model
end)

service:put("/user/:name/api/contents/*path", function(req)
  local name, path = contents_call(req)
  if not name then return path, { message = "refused" } end
  local model = json.decode(req:body(128 * 1024 * 1024))
  if type(model) ~= "table" then return 400, { message = "bad model" } end
  local parent = parent_of(path)
  if parent ~= "" and not state:get("file:" .. name .. ":" .. parent) then
    return 404, { message = "No such directory: " .. parent }
  end
  if model.type == "file" then
    if model.format == "base64" and not crypto.unbase64(model.content or "") then
      return 400, { message = "bad base64" }
    end
    if model.format ~= "base64" and model.format ~= "text" then return 400, { message = "bad format" } end
  elseif model.type ~= "directory" then
    return 400, { message = "bad type" }
  end
  local key = "file:" .. name .. ":" .. path
  local existed = state:get(key) ~= nil
  state:put(key, { name = path:match("[^/]*$"), path = path, type = model.type,
                   format = model.format or json.null, content = model.content or json.null })
  return existed and 200 or 201, { path = path, type = model.type }
end)

service:get("/calls", function()
  local calls = {}
  for _, row in ipairs(state:iter({ prefix = "calls:" })) do calls[row.key:sub(7)] = row.value end
  return setmetatable(calls, json.object_mt)
end)
