-- The staging service's API documentation: the info of its OpenAPI document (served at
-- /docs, /redoc and /openapi.json as the original FastAPI service did) and the documentation
-- options of each route (init.lua passes them to service:route), in the original's shapes
-- (docs/services/staging.md).
local schema = require "openapi.schema"
local required = schema.required

local M = {}

local METHODS = { "local_copy", "local_symlink", "direct_download", "jupyter_copy" }

local DETAIL = schema.object({ detail = required(schema.string()) }, { description = "FastAPI's HTTPException" })

-- FastAPI's validation errors (pydantic 2.10).
local VALIDATION_ERROR = { description = "Validation error", json = schema.object({
  detail = required(schema.array(schema.object({
    type = required(schema.string({ examples = { "missing", "string_type", "model_type", "json_invalid", "int_parsing" } })),
    loc = required(schema.array(schema.one_of({ schema.string(), schema.integer() }), { description = "[\"query\", \"method\"], [\"body\", \"data\", \"relative_path\"]..." })),
    msg = required(schema.string({ examples = { "Field required" } })),
    input = required(schema.any({ description = "The value found (null when missing)" })),
    ctx = schema.map(schema.any()),
    url = schema.string({ examples = { "https://errors.pydantic.dev/2.10/v/missing" } }),
  }))),
}, { description = "FastAPI's validation error (pydantic 2.10)" }) }

local SUCCESS = { description = "Done", json = schema.object({
  status = required(schema.string({ const = "success" })),
  message = required(schema.string({ examples = { "Data staged for user alice with method local_copy" } })),
}) }

local RECORD = schema.object({
  id = required(schema.string({ pattern = "^[0-9]+-[0-9a-f]+$" })),
  time = required(schema.string({ format = "date-time" })),
  username = required(schema.string()),
  method = required(schema.string({ enum = METHODS })),
  source = schema.string({ description = "The source path, as the request named it or as resolved" }),
  target = schema.string(),
  status = required(schema.string({ enum = { "running", "success", "failed" } })),
  error = required(schema.nullable(schema.string())),
  message = schema.string(),
  bytes = required(schema.integer()),
  duration = required(schema.nullable(schema.number({ description = "Seconds" }))),
  bytes_done = schema.integer({ description = "Progress of a large copy" }),
  bytes_total = schema.integer(),
}, { description = "One staging request" })

M.info = {
  title = "SKA Staging Service",
  version = "1.0",
  description = "Stages files and trees from the source storage into user areas (copy or symlink), "
    .. "streams them (direct download) or copies them into the user's Jupyter server; records every request. "
    .. "Every error is {\"detail\": ...}; every route answers with and without its trailing slash.",
  responses = { [500] = { description = "An unexpected error", json = DETAIL } },
}

M.stage = {
  summary = "Stage data",
  description = "Checks, in the original's order: validation (422), the method, the username, the Jupyter user, "
    .. "the source path (400); then copies, links, sends or uploads. direct_download answers the file itself.",
  query = {
    method = required(schema.string({ description = "The staging method (one of ALLOWED_METHODS)", enum = METHODS })),
    username = required(schema.string({ description = "The user whose area receives the data: a POSIX name or a lower-case e-mail address (under the users guard, a user who is not an admin may only give their own e-mail)",
      pattern = "^([a-z_][a-z0-9_-]{0,31}|[a-z0-9_][a-z0-9_.+-]*@[a-z0-9][a-z0-9.-]*)$" })),
    jupyter_token = schema.string({ description = "jupyter_copy: the user's own token for their server" }),
  },
  body = { json = schema.object({
    data = required(schema.object({
      local_path_on_storage = required(schema.string({ description = "Under SOURCE_STORAGE_PATH", examples = { "project/file.fits" } })),
      relative_path = required(schema.string({ description = "Under the user's area", examples = { "staged/file.fits" } })),
    })),
  }) },
  responses = {
    [200] = { description = "Staged (or already there); for direct_download, the file",
      content = { ["application/json"] = SUCCESS.json, ["application/octet-stream"] = schema.binary() } },
    [400] = { description = "An invalid method, username, source or relative path, a missing source",
      json = DETAIL },
    [403] = { description = "Under the users guard: another user's username", json = DETAIL },
    [422] = VALIDATION_ERROR,
    [500] = { description = "A copy, link, download or Jupyter call that failed", json = DETAIL },
  },
}

M.records = {
  summary = "List the records",
  description = "Newest first.",
  query = {
    username = schema.string({ description = "Only this user's (empty: all; under the users guard, a user who is not an admin sees only their own)" }),
    status = schema.string({ description = "Only those with this status (empty: all)", enum = { "", "running", "success", "failed" } }),
    limit = schema.integer({ description = "At most this many (clamped to 1..1000)", default = 100 }),
  },
  responses = {
    [200] = { description = "The records", json = schema.object({ records = required(schema.array(RECORD)) }) },
    [403] = { description = "Under the users guard: another user's username", json = DETAIL },
    [422] = VALIDATION_ERROR,
  },
}

M.record = {
  summary = "One record",
  path = { id = schema.string({ description = "The record's id" }) },
  responses = {
    [200] = { description = "The record", json = RECORD },
    [404] = { description = "No such record, or under the users guard another user's (detail \"Record not found\")", json = DETAIL },
  },
}

M.logs = {
  summary = "The staging log",
  responses = {
    [200] = { description = "The log, newest line last", text = schema.string() },
    [404] = { description = "No log (detail \"Log file not found\")", json = DETAIL },
  },
}

M.config = {
  summary = "The storage paths and allowed methods",
  responses = { [200] = { description = "The configuration (never the hub token)", json = schema.object({
    source_storage_path = required(schema.string()), target_storage_path = required(schema.string()),
    allowed_methods = required(schema.array(schema.string({ enum = METHODS }))),
  }) } },
}

M.allowed_methods = {
  summary = "The allowed staging methods",
  responses = { [200] = { description = "The methods", json = schema.object({
    allowed_methods = required(schema.array(schema.string({ enum = METHODS }))),
  }) } },
}

M.create_file = {
  summary = "Create a text file in the source storage",
  body = { json = schema.object({
    filename = required(schema.string({ description = "Under SOURCE_STORAGE_PATH" })),
    content = required(schema.string()),
  }) },
  responses = {
    [200] = { description = "Written", json = SUCCESS.json },
    [400] = { description = "A name outside the source storage", json = DETAIL },
    [413] = { description = "A body over CREATE_FILE_MAX_BYTES", json = DETAIL },
    [422] = VALIDATION_ERROR,
    [500] = { description = "The file could not be written", json = DETAIL },
  },
}

M.page = {
  summary = "The web page",
  description = "Under a prefix, the prefix without its slash redirects (307) to it with one.",
  responses = {
    [200] = { description = "The page", content = { ["text/html"] = schema.string() } },
    [307] = { description = "To the same path with a trailing slash", headers = { Location = schema.string() } },
    [404] = { description = "The page is not installed", json = DETAIL },
  },
}

M.page_file = {
  summary = "A file of the web page",
  path = { file = schema.string({ description = "A path under scripts/staging/web/" }) },
  responses = {
    [200] = { description = "The file", content = { ["application/octet-stream"] = schema.binary() } },
    [404] = { description = "No such file", json = DETAIL },
  },
}

return M
