-- The OpenAPI 3.1 document of the services on a mount prefix, generated from their routes and the
-- documentation options of each (summary, parameters, body, responses; schemas from
-- openapi.schema), and the pages that show it: <mount>/openapi.json, <mount>/docs (Swagger UI)
-- and <mount>/redoc (ReDoc), their assets read from this folder's node_modules (setup.sh installs
-- them with npm ci), so the pages work offline. See docs/lua-api.md#openapi.
local depot = require "depot"
local fs = require "fs"
local json = require "json"
local log = require "log"
local schema = require "openapi.schema"

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")

-- The served asset names and their files: a fixed list, so no request path reaches the disk.
local ASSETS = {
  ["swagger-ui.css"] = "node_modules/swagger-ui-dist/swagger-ui.css",
  ["swagger-ui-bundle.js"] = "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
  ["favicon-32x32.png"] = "node_modules/swagger-ui-dist/favicon-32x32.png",
  ["redoc.standalone.js"] = "node_modules/redoc/bundles/redoc.standalone.js",
}

-- What each "*" route stands for in the document (HEAD is answered by GET and not listed).
local ANY_METHODS = { "get", "put", "post", "delete", "patch", "options" }

-- Per Lua state, so per worker and generation: mount prefix ("" for the root) → the services
-- documented there, in the order they called serve.
local documented = {}

local function array(list) return setmetatable(list, json.array_mt) end

local function prefix_of(mount) return (mount:gsub("/+$", "")) end

local function shallow_copy(table_value)
  local copy = {}
  for key, value in pairs(table_value) do copy[key] = value end
  return copy
end

------------------------------------------------------------------------------------------------
-- The document

-- "/v1/cache/:cache_id" → "/v1/cache/{cache_id}" and the parameter names in order.
local function openapi_path(pattern)
  local names = {}
  local path = pattern:gsub("([:*])([^/]+)", function(_, name)
    names[#names + 1] = name
    return "{" .. name .. "}"
  end)
  return path, names
end

-- One parameter object; its schema's description becomes the parameter's, where the pages show it.
local function parameter(name, location, value, required)
  local parameter_schema, marked = schema.unwrap(value)
  parameter_schema = shallow_copy(parameter_schema)
  local description = parameter_schema.description
  parameter_schema.description = nil
  return { name = name, ["in"] = location, required = required or marked, description = description,
           schema = next(parameter_schema) and parameter_schema or setmetatable({}, json.object_mt) }
end

local function sorted_keys(table_value)
  local keys = {}
  for key in pairs(table_value or {}) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function parameters(options, path_names)
  local list = {}
  local path_schemas = options.path or {}
  for _, name in ipairs(path_names) do
    list[#list + 1] = parameter(name, "path", path_schemas[name] or schema.string(), true)
  end
  for _, location in ipairs({ "query", "header" }) do
    local given = options[location == "header" and "headers" or location] or {}
    for _, name in ipairs(sorted_keys(given)) do
      list[#list + 1] = parameter(name, location, given[name], false)
    end
  end
  return #list > 0 and array(list) or nil
end

-- {json = schema, text = schema, content = {[media type] = schema}} → an OpenAPI content map.
local function content(spec)
  local map = {}
  for media_type, media_schema in pairs(spec.content or {}) do map[media_type] = { schema = media_schema } end
  if spec.json then map["application/json"] = { schema = spec.json } end
  if spec.text then map["text/plain"] = { schema = spec.text } end
  return next(map) and map or nil
end

local function response(where, status, spec)
  if type(spec.description) ~= "string" then
    error(string.format("openapi: %s: response %s needs a description", where, tostring(status)), 0)
  end
  local headers
  for _, name in ipairs(sorted_keys(spec.headers)) do
    local header_schema = shallow_copy(spec.headers[name])
    local description = header_schema.description
    header_schema.description = nil
    headers = headers or {}
    headers[name] = { description = description, schema = header_schema }
  end
  return { description = spec.description, content = content(spec), headers = headers }
end

local function responses(where, options, defaults)
  local map = {}
  for status, spec in pairs(M.responses(defaults or {}, options.responses or {})) do
    map[tostring(status)] = response(where, status, spec)
  end
  if not next(map) then map.default = { description = "Not documented" } end
  return map
end

local function operation_id(service, method, pattern)
  local words = (pattern:gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", ""))
  return service.name .. "_" .. method .. (words ~= "" and "_" .. words or "")
end

local function operation(service, info, route, method, path_names)
  local options = route.options
  local where = string.format("%s: %s %s", service.name, route.method, route.pattern)
  local body = options.body
  local security
  if options.security then
    security = {}
    for i, name in ipairs(options.security) do security[i] = { [name] = array({}) } end
    security = array(security)
  end
  return {
    operationId = operation_id(service, method, route.pattern),
    summary = options.summary,
    description = options.description,
    tags = array({ service.name }),
    parameters = parameters(options, path_names),
    requestBody = body and { description = body.description, required = body.required ~= false,
                             content = content(body) } or nil,
    responses = responses(where, options, info.responses),
    security = security,
  }
end

local function registered_under(route, prefix)
  if route.options.mounts == nil then return true end
  for _, mount in ipairs(route.options.mounts) do
    if prefix_of(mount) == prefix then return true end
  end
  return false
end

-- The routes of `service` in the document of `prefix`: every route registered there but those
-- with `openapi = false` (the pages themselves). Calls fn(route, method, path, names).
function M.each_documented_route(service, prefix, fn)
  for _, route in ipairs(service.routes) do
    if route.options.openapi ~= false and registered_under(route, prefix) then
      local path, names = openapi_path(route.pattern)
      local methods = route.method == "*" and ANY_METHODS or { route.method:lower() }
      for _, method in ipairs(methods) do fn(route, method, path, names) end
    end
  end
end

-- The document of the services at `prefix` (those not disabled at load).
function M.document(prefix)
  local paths, tags, titles, versions, schemes = {}, {}, {}, {}, nil
  local descriptions = {}
  for _, entry in ipairs(documented[prefix] or {}) do
    local service, info = entry.service, entry.info
    if not service.disabled then
      titles[#titles + 1] = info.title
      if versions[#versions] ~= info.version then versions[#versions + 1] = info.version end
      descriptions[#descriptions + 1] = info.description
      tags[#tags + 1] = { name = service.name, description = info.title .. (info.description and ": " .. info.description or "") }
      for name, scheme in pairs(info.security_schemes or {}) do
        schemes = schemes or {}
        schemes[name] = scheme
      end
      M.each_documented_route(service, prefix, function(route, method, path, names)
        paths[path] = paths[path] or {}
        -- A "*" route documents the methods no other route of this path has.
        if not (route.method == "*" and paths[path][method]) then
          paths[path][method] = operation(service, info, route, method, names)
        end
      end)
    end
  end
  local single = #titles == 1
  return {
    openapi = "3.1.0",
    info = {
      title = single and titles[1] or table.concat(titles, ", "),
      version = table.concat(versions, ", "),
      description = single and descriptions[1] or nil,
    },
    servers = array({ { url = prefix == "" and "/" or prefix } }),
    tags = array(tags),
    paths = setmetatable(paths, json.object_mt),
    components = schemes and { securitySchemes = schemes } or nil,
  }
end

-- The body of the engine's error answers, for services without service:on_error.
M.ENGINE_ERROR = schema.object({
  error = schema.required(schema.string({ examples = { "internal server error" } })),
  status = schema.required(schema.integer()),
  request_id = schema.required(schema.string({ description = "The request's id in the server's log" })),
}, { description = "An error answered by the engine" })

-- `own` responses (status → spec) completed with the `shared` ones it does not give: the
-- answers a group of routes has in common (a policy's, an authentication's).
function M.responses(shared, own)
  local merged = {}
  for status, spec in pairs(shared) do merged[status] = spec end
  for status, spec in pairs(own) do merged[status] = spec end
  return merged
end

------------------------------------------------------------------------------------------------
-- The pages

local page_templates = {}

-- Nothing but Depot: ReDoc's footer shows a logo from its vendor's CDN, which this keeps the
-- browser from fetching (the image hides itself when it fails). Swagger UI's page has an inline
-- script; styles are inline in both (styled-components), ReDoc's search runs in a blob worker.
local POLICIES = {
  swagger = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
  redoc = "default-src 'self'; script-src 'self' blob:; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
    .. "img-src 'self' data:",
}

local function escape_html(text)
  return (text:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end

-- The page `name` (pages/<name>.html) for the document at `prefix`.
local function page(name, prefix)
  local template = page_templates[name]
  if not template then
    template = assert(fs.read(here .. "/pages/" .. name .. ".html"))
    page_templates[name] = template
  end
  local document = M.document(prefix)
  local values = { title = document.info.title, openapi_url = prefix .. "/openapi.json", assets = prefix .. "/docs/assets" }
  local html = template:gsub("{{([%w_]+)}}", function(key) return escape_html(values[key]) end)
  return 200, html, { ["Content-Type"] = "text/html; charset=utf-8", ["Content-Security-Policy"] = POLICIES[name] }
end

-- A 404 answers in the service's own shape (its on_error), like any unknown path under it.
local function serve_asset(req, res)
  local file = ASSETS[req.params.file]
  if not file then depot.fail(404, "not found") end
  if not res:file(here .. "/" .. file, { headers = { ["Cache-Control"] = "public, max-age=86400" } }) then
    log.warn("openapi: an asset of the API pages is missing: run setup.sh (npm ci in scripts/lib/openapi)",
      { file = file })
    depot.fail(404, "not found")
  end
end

-- The pages of `prefix`, served by `service` through `mount` only.
local function add_pages(service, mount, prefix)
  local options = { mounts = { mount }, before = false, openapi = false }
  local encoded
  service:get("/openapi.json", function()
    encoded = encoded or json.encode(M.document(prefix))
    return 200, encoded, { ["Content-Type"] = "application/json" }
  end, options)
  service:get("/docs", function() return page("swagger", prefix) end, options)
  service:get("/redoc", function() return page("redoc", prefix) end, options)
  service:get("/docs/assets/:file", serve_asset, options)
end

-- Documents `service` at each of its mounts. info: title, version, description; responses
-- (status → response spec) every operation may give; security_schemes (name → OpenAPI security
-- scheme) that routes name in options.security. The first service documented at a prefix
-- serves the pages there, for every service at it; call serve last in the script, so that a
-- service that fails to load has not claimed its prefixes. With "openapi": false in its config
-- section, a service is left out.
function M.serve(service, info)
  assert(type(info) == "table" and type(info.title) == "string" and type(info.version) == "string",
    "openapi.serve: info needs a title and a version")
  if (service.config or {}).openapi == false then return end
  -- Built once now, so that a mistake in a route's documentation fails the load, not a request.
  for _, mount in ipairs(service.mounts or {}) do
    M.each_documented_route(service, prefix_of(mount), function(route, method, _, names)
      operation(service, info, route, method, names)
    end)
  end
  for _, mount in ipairs(service.mounts or {}) do
    local prefix = prefix_of(mount)
    local list = documented[prefix]
    if not list then
      list = {}
      documented[prefix] = list
      add_pages(service, mount, prefix)
    end
    list[#list + 1] = { service = service, info = info }
  end
end

return M
