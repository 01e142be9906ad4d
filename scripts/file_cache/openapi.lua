-- The file cache's API documentation: the info of its OpenAPI document and the documentation
-- options of each route (init.lua passes them to service:get/post/delete), in the original's
-- shapes (docs/services/file-cache.md).
local openapi = require "openapi"
local schema = require "openapi.schema"
local required = schema.required

local M = {}

local function error_body(description, examples)
  return schema.object({
    status = required(schema.string({ const = "error" })),
    error = required(schema.string({ examples = examples })),
  }, { description = description })
end

local CACHE_ID = schema.string({ description = "A cache id from POST /v1/cache_id: hex BLAKE2b-512 of the token's identity and the JSON given",
  pattern = "^[0-9a-f]{128}$" })

-- What every route that needs a token may answer.
local AUTHENTICATED = {
  [400] = { description = "No Authorization header, or a bad request (the error says which)",
    json = error_body("An error", { "Missing header: Authorization" }) },
  [403] = { description = "The auth service refused the token, or another identity owns the cache",
    json = error_body("An error", { "10020 Invalid token", "You do not have access to that cache" }) },
}

local function with(responses) return openapi.responses(AUTHENTICATED, responses) end

M.info = {
  title = "KBase file cache",
  version = "1.0",
  description = "Token-scoped cache ids, multipart upload, download and delete of one file per id, with expiry. "
    .. "Every error is {\"status\": \"error\", \"error\": ...}; an unknown path answers 404 {\"status\": \"error\"}, "
    .. "a wrong method 405 {\"status\": \"error\", \"error\": \"Method not allowed\"}.",
  security_schemes = {
    kbase_token = { type = "apiKey", ["in"] = "header", name = "Authorization",
      description = "A KBase auth token, sent as it is (no Bearer) to the auth service" },
  },
  responses = {
    [500] = { description = "The auth service is unreachable or makes no sense, a disk failure, or a bug",
      json = error_body("An error", { "Unexpected server error" }) },
  },
}

M.root = {
  summary = "The API's versions",
  responses = { [200] = { description = "The endpoints", json = schema.object({
    endpoints = required(schema.map(schema.object({
      path = schema.string(), desc = schema.string(), example = schema.string(),
    }))),
  }) } },
}

M.version_1 = {
  summary = "The routes of version 1",
  responses = { [200] = { description = "Route names and their method and path", json = schema.object({
    routes = required(schema.map(schema.string({ examples = { "POST /cache_id" } }))),
  }) } },
}

M.create_cache_id = {
  summary = "Get a cache id",
  description = "The same token identity and JSON always give the same id. A new id gets a placeholder entry "
    .. "(no file, 7 days); a known one is returned as it is (filename other than \"placeholder\": a file is cached).",
  security = { "kbase_token" },
  body = {
    description = "Any non-empty JSON object or array (Content-Type: application/json)",
    json = schema.any({ description = "What identifies the cached file: method name, parameters..." }),
  },
  responses = with({
    [200] = { description = "The cache id and its entry", json = schema.object({
      cache_id = required(CACHE_ID),
      status = required(schema.string({ const = "ok" })),
      metadata = required(schema.object({
        expiration = required(schema.string({ description = "Unix seconds" })),
        filename = required(schema.string({ description = "The stored file's name, or \"placeholder\"" })),
        token_id = required(schema.string({ description = "KBASE_AUTH_URL:user" })),
      })),
    }) },
    [400] = { description = "No Authorization header, a Content-Type other than JSON, malformed or empty JSON",
      json = error_body("An error", { "Missing header: Authorization",
        "Invalid Content-Type: 'None'. Must be: 'application/json'.",
        "JSON parsing error: Expecting value: line 1 column 1 (char 0)",
        "Must provide non-empty JSON data for the cache identifier" }) },
    [413] = { description = "A body over the server's limit", json = error_body("An error") },
  }),
}

local PATH = { cache_id = CACHE_ID }
local OK = { description = "Done", json = schema.object({ status = required(schema.string({ const = "ok" })) }) }
local NOT_FOUND = { description = "Unknown cache id, or no file stored under it",
  json = error_body("An error", { "Cache ID not found" }) }

M.upload = {
  summary = "Upload the file of a cache id",
  description = "Stored for 30 days, replacing any previous file; the name goes through werkzeug's secure_filename.",
  security = { "kbase_token" },
  path = PATH,
  body = { content = { ["multipart/form-data"] = schema.object({
    file = required(schema.binary({ description = "The file, with its filename" })),
  }) } },
  responses = with({
    [200] = OK,
    [400] = { description = "No Authorization header, no file part, an empty filename or a malformed body",
      json = error_body("An error", { "File field missing", "Filename missing" }) },
    [404] = NOT_FOUND,
    [413] = { description = "A file over the max_upload_bytes setting (none by default)",
      json = error_body("An error", { "File too large: the limit is 100000 bytes" }) },
  }),
}

M.download = {
  summary = "Download the file of a cache id",
  description = "With Content-Disposition (the stored name), ETag and Last-Modified (304), Range (206) and HEAD. "
    .. "A download renews the file's 30 days.",
  security = { "kbase_token" },
  path = PATH,
  responses = with({
    [200] = { description = "The file; Content-Type from its name's extension",
      content = { ["application/octet-stream"] = schema.binary() },
      headers = { ["Content-Disposition"] = schema.string({ description = "attachment; filename=\"<stored name>\"" }) } },
    [206] = { description = "The range asked for", content = { ["application/octet-stream"] = schema.binary() } },
    [304] = { description = "Not modified since the ETag or date given" },
    [404] = NOT_FOUND,
  }),
}

M.delete = {
  summary = "Delete a cache id and its file",
  security = { "kbase_token" },
  path = PATH,
  responses = with({ [200] = OK, [404] = NOT_FOUND }),
}

return M
