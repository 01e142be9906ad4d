-- The checks of POST /servicex/transformation in the original's order and with its messages
-- (ServiceX_App resources/transformation/submit.py): the arguments, did xor file-list, the DID
-- scheme, the transformer image (on the registry, when TRANSFORMER_VALIDATE_DOCKER_IMAGE), the
-- workflow (columns xor selection). Where the original's reqparse failures said only
-- werkzeug's "The browser (or proxy) sent a request that this server could not understand.",
-- these name the argument and the reason, after the same prefix.
local http = require "http"
local json = require "json"
local log = require "log"

local M = {}

local MALFORMED = "The json request was malformed: 400 Bad Request: "
local DESTINATIONS = { ["object-store"] = true, volume = true }
local FORMATS = { arrow = true, parquet = true, ["root-file"] = true }
local TEXT_ARGUMENTS = { "title", "did", "columns", "selection", "image", "tree-name" }

local function malformed(reason) return nil, 400, { message = MALFORMED .. reason } end

-- Python's bool() of an argument: absent, null, "" and [] are all "not given".
local function given(value)
  return value ~= nil and value ~= json.null and value ~= "" and not (type(value) == "table" and #value == 0)
end

-- reqparse's type=int: an integer or a string of one.
local function integer(value)
  local number = type(value) == "string" and tonumber(value:match("^%s*([+-]?%d+)%s*$")) or value
  if type(number) == "number" and number == math.floor(number) then return number end
  return nil
end

-- The arguments of `text` (the body) by name, or nil, 400, body.
local function arguments(text)
  local body, err = json.decode(text ~= "" and text or "{}")
  if body == nil then return malformed("Failed to decode JSON object: " .. err) end
  if type(body) ~= "table" or getmetatable(body) ~= json.object_mt then
    return malformed("the body must be a JSON object")
  end
  local args = {}
  for _, name in ipairs(TEXT_ARGUMENTS) do
    local value = body[name]
    if value ~= nil and value ~= json.null then
      if type(value) ~= "string" then return malformed(name .. ": must be a string") end
      args[name] = value
    end
  end
  if args.title and #args.title > 128 then return malformed("title: at most 128 characters") end
  local workers = body.workers
  if workers ~= nil and workers ~= json.null then
    args.workers = integer(workers)
    if not args.workers then
      return malformed(string.format("workers: invalid literal for int() with base 10: %s", json.encode(workers)))
    end
  end
  local files = body["file-list"]
  if files ~= nil and files ~= json.null then
    if type(files) ~= "table" or getmetatable(files) ~= json.array_mt then
      return malformed("file-list: must be a list of file paths")
    end
    for _, path in ipairs(files) do
      if type(path) ~= "string" or path == "" then return malformed("file-list: must be a list of file paths") end
    end
    args["file-list"] = files
  end
  local destination = body["result-destination"]
  if destination == nil or destination == json.null then
    return malformed("result-destination: Missing required parameter in the JSON body or the post body or the query string")
  end
  if not DESTINATIONS[destination] then
    return malformed(string.format("result-destination: %s is not a valid choice", tostring(destination)))
  end
  args["result-destination"] = destination
  local format = body["result-format"]
  if format == nil or format == json.null then format = "arrow" end
  if not FORMATS[format] then return malformed(string.format("result-format: %s is not a valid choice", tostring(format))) end
  args["result-format"] = format
  return args
end

-- DIDParser: "scheme://did" or a bare did under the default scheme.
local function parse_did(did, default_scheme)
  local scheme, rest = did:match("^([%a][%w+.-]*)://(.*)$")
  if not scheme then scheme, rest = default_scheme, did end
  return { scheme = scheme, did = rest, full = scheme .. "://" .. rest }
end

-- DockerRepoAdapter.check_image_exists: "repo:tag" known to the registry. nil, message when the
-- registry could not be asked.
local function image_exists(settings, image)
  local repo, tag = image:match("^(.+):([^:/]+)$")
  if not repo then return false end
  local response, err = http.get(string.format("%s/v2/repositories/%s/tags/%s", settings.docker_repo_url, repo, tag),
    { timeout = 10 })
  if not response then return nil, err end
  if response.status == 404 then return false end
  return response.status < 400 or nil, "status " .. response.status
end

-- The record fields and the file list of the request in `text`, or nil, status, body.
function M.check(text, settings)
  local args, status, body = arguments(text)
  if not args then return nil, status, body end
  local did, file_list = args.did, args["file-list"] or {}
  if given(did) == given(file_list) then return malformed("Must provide did or file-list but not both") end
  local parsed
  if given(did) then
    parsed = parse_did(did, settings.default_scheme)
    if not settings.valid_schemes[parsed.scheme] then
      log.warn("transformation refused: DID scheme not supported", { scheme = parsed.scheme })
      return nil, 400, { message = "DID scheme is not supported: " .. parsed.scheme }
    end
  end
  local image = args.image or settings.default_image
  if settings.validate_image then
    local exists, err = image_exists(settings, image)
    if exists == nil then
      log.error("transformer image check failed", { image = image, error = err })
      return nil, 503, { message = "Could not check the transformer docker image: " .. image }
    end
    if not exists then return nil, 400, { message = "Requested transformer docker image doesn't exist: " .. image } end
  end
  local has_columns, has_selection = given(args.columns), given(args.selection)
  if has_columns == has_selection then
    return nil, 400, { message = "Failed to submit transform request: Cannot determine workflow from argument - "
      .. "selection or columns must be given, and not both" }
  end
  return {
    title = args.title, did = parsed and parsed.full or "File List Provided in Request",
    did_bare = parsed and parsed.did, scheme = parsed and parsed.scheme,
    columns = args.columns, selection = args.selection, ["tree-name"] = args["tree-name"], image = image,
    workers = args.workers, ["result-destination"] = args["result-destination"],
    ["result-format"] = args["result-format"],
    ["workflow-name"] = has_columns and "straight_transform" or "selection_codegen",
    ["app-version"] = settings.app_version, ["code-gen-image"] = settings.code_gen_image ~= "" and settings.code_gen_image or nil,
  }, file_list
end

return M
