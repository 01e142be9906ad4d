-- The transformation API's documentation: the documentation options of the users' routes
-- (routes.lua) and of the worker protocol (internal.lua), in their shapes
-- (docs/services/users.md, "Transformation requests").
local openapi = require "openapi"
local schema = require "openapi.schema"
local required = schema.required

local M = {}

local message = require("users.openapi").message

local NULLABLE_STRING = schema.nullable(schema.string())
local NULLABLE_INTEGER = schema.nullable(schema.integer())

local RECORD = schema.object({
  request_id = required(schema.string({ description = "A uuid4" })), id = required(schema.integer()),
  ["submitted-by"] = NULLABLE_INTEGER, did = NULLABLE_STRING, columns = NULLABLE_STRING, selection = NULLABLE_STRING,
  ["tree-name"] = NULLABLE_STRING, image = NULLABLE_STRING, workers = NULLABLE_INTEGER,
  ["result-destination"] = schema.string({ enum = { "object-store", "volume" } }),
  ["result-format"] = schema.string({ enum = { "arrow", "parquet", "root-file" } }),
  ["workflow-name"] = schema.string({ enum = { "straight_transform", "selection_codegen" } }),
  ["generated-code-cm"] = schema.null(),
  status = required(schema.string({ enum = { "Submitted", "Running", "Complete", "Fatal", "Canceled" } })),
  ["failure-info"] = NULLABLE_STRING, ["app-version"] = NULLABLE_STRING, ["code-gen-image"] = NULLABLE_STRING,
  title = NULLABLE_STRING,
  ["files-processed"] = schema.integer(), ["files-skipped"] = schema.integer(),
  ["files-remaining"] = schema.nullable(schema.integer({ description = "null until the dataset's size is known" })),
  ["submit-time"] = NULLABLE_STRING, ["finish-time"] = NULLABLE_STRING,
  ["minio-endpoint"] = schema.string({ description = "Object-store requests with OBJECT_STORE_ENABLED" }),
  ["minio-secured"] = schema.boolean(),
}, { description = "A transformation request (never an object-store key)" })

local NOT_FOUND = { description = "No such request, or another user's",
  json = message({ "Transformation request not found with id: 1" }) }

-- What auth_required answers (see the users' routes).
local SIGNED_IN = {
  [401] = { description = "No token, an expired one, or not an approved user's", json = message({ "Missing Authorization Header" }) },
  [422] = { description = "A malformed or tampered token", json = schema.object({ msg = required(schema.string()) }) },
}
local function signed_in(responses) return openapi.responses(SIGNED_IN, responses) end

local REQUEST_ID = { request_id = schema.string({ description = "The request's uuid4 (or its integer id)" }) }

M.submit = {
  summary = "Submit a transformation request", security = { "access_token" },
  body = { json = schema.object({
    ["result-destination"] = required(schema.string({ enum = { "object-store", "volume" } })),
    ["result-format"] = schema.string({ enum = { "arrow", "parquet", "root-file" }, default = "arrow" }),
    did = schema.string({ description = "scheme://dataset (or file-list, not both)" }),
    ["file-list"] = schema.array(schema.string()),
    columns = schema.string({ description = "Or selection, not both" }), selection = schema.string(),
    ["tree-name"] = schema.string(), image = schema.string(), workers = schema.integer(),
    title = schema.string({ max_length = 128 }), ["codegen"] = schema.string(),
  }) },
  responses = signed_in({
    [200] = { description = "Submitted", json = schema.object({ request_id = required(schema.string()) }) },
    [400] = { description = "A malformed argument, did and file-list, an unsupported scheme or image, neither or both of columns and selection",
      json = message({ "DID scheme is not supported: foo" }) },
    [503] = { description = "The dispatch queue is full, or the image registry cannot be asked",
      json = message({ "Error setting up transformer queues" }) },
  }),
}

M.list = {
  summary = "List transformation requests", description = "Yours (admins: everyone's), in submission order.",
  security = { "access_token" },
  query = { submitted_by = schema.integer({ description = "Only this user's (admins)" }) },
  responses = signed_in({
    [200] = { description = "The requests", json = schema.object({ requests = required(schema.array(RECORD)) }) },
    [400] = { description = "submitted_by not an integer", json = message({ { submitted_by = "invalid literal for int() with base 10: 'x'" } }) },
  }),
}

M.read = {
  summary = "One transformation request", security = { "access_token" }, path = REQUEST_ID,
  responses = signed_in({ [200] = { description = "The request", json = RECORD }, [404] = NOT_FOUND }),
}

M.status = {
  summary = "A transformation request's progress", security = { "access_token" }, path = REQUEST_ID,
  query = { details = schema.string({ description = "true: with each file's result" }) },
  responses = signed_in({
    [200] = { description = "The status", json = schema.object({
      status = required(schema.string()), ["request-id"] = required(schema.string()),
      ["submit-time"] = NULLABLE_STRING, ["finish-time"] = NULLABLE_STRING,
      ["files-processed"] = schema.integer(), ["files-skipped"] = schema.integer(), ["files-remaining"] = NULLABLE_INTEGER,
      stats = schema.nullable(schema.map(schema.number())), details = schema.array(schema.map(schema.any())),
    }) },
    [404] = NOT_FOUND,
  }),
}

M.errors = {
  summary = "The files a transformation request failed on", security = { "access_token" }, path = REQUEST_ID,
  responses = signed_in({
    [200] = { description = "The failures", json = schema.object({ errors = required(schema.array(schema.object({
      ["pod-name"] = schema.string(), file = schema.string(), events = schema.integer(), info = schema.string(),
    }))) }) },
    [404] = NOT_FOUND,
  }),
}

M.cancel = {
  summary = "Cancel a transformation request", security = { "access_token" }, path = REQUEST_ID,
  responses = signed_in({
    [200] = { description = "Canceled", json = message({ "Canceled transformation request 1" }) },
    [400] = { description = "Already finished", json = message({ "Transform request with id 1 is not in progress." }) },
    [404] = NOT_FOUND,
  }),
}

------------------------------------------------------------------------------------------------
-- The worker protocol

-- What the worker token check answers.
local WORKER = {
  [401] = { description = "No token, or not SERVICEX_WORKER_TOKEN", json = message({ "Not Authorized: invalid worker token" }) },
  [403] = { description = "SERVICEX_WORKER_TOKEN is not set", json = message({ "The worker API is disabled: SERVICEX_WORKER_TOKEN is not set" }) },
}
local OK = { description = "Recorded (the lease is renewed)", json = schema.string({ const = "Ok" }) }
local BLANK = { description = "A required field missing", json = message({ { paths = "This field cannot be blank" } }) }

-- A worker route on a request: `summary`, the body's fields, its own answers.
local function report(summary, fields, answers)
  return {
    summary = summary, security = { "worker_token" },
    path = { request_id = schema.string({ description = "The request's uuid4" }),
             file_id = schema.string({ description = "The file's id" }) },
    body = fields and { json = schema.object(fields) } or nil,
    responses = openapi.responses(WORKER, openapi.responses({
      [200] = OK, [400] = BLANK,
      [404] = { description = "No such request", json = message({ "Transformation request not found with id: x" }) },
    }, answers or {})),
  }
end

M.lease = {
  summary = "Lease the next due transformation request (workers)", security = { "worker_token" },
  body = { json = schema.object({ worker = required(schema.string({ description = "The worker's name" })) }) },
  responses = openapi.responses(WORKER, {
    [200] = { description = "The leased request", json = schema.object({
      request_id = required(schema.string()), did = NULLABLE_STRING, scheme = NULLABLE_STRING,
      ["service-endpoint"] = required(schema.string()), ["fileset-complete"] = required(schema.boolean()),
      lease = required(schema.integer({ description = "How many times it was leased" })),
      ["lease-seconds"] = required(schema.number()), request = required(RECORD),
    }) },
    [204] = { description = "Nothing is due" },
    [400] = BLANK,
  }),
}

M.files = report("The files of a request, a page at a time (workers)", nil, {
  [200] = { description = "A page of files", json = schema.object({
    files = required(schema.array(schema.object({
      ["file-id"] = schema.integer(), paths = schema.string(), adler32 = schema.any(), ["file-size"] = NULLABLE_INTEGER,
      ["file-events"] = NULLABLE_INTEGER, done = schema.boolean({ description = "Whether it has a result" }),
    }))),
    next = required(schema.nullable(schema.integer())),
  }) },
})
M.files.query = { after = schema.integer({ description = "The last file-id of the previous page" }),
                  limit = schema.integer({ description = "At most 1000" }) }

M.report_status = report("Report a request's status (workers)", {
  timestamp = required(schema.string()), severity = schema.string({ examples = { "fatal" } }),
  info = schema.string(), source = schema.string(),
})
M.add_file = report("Add a file of the dataset (workers)", {
  paths = required(schema.string()), adler32 = schema.any(), file_size = schema.integer(), file_events = schema.integer(),
}, { [200] = { description = "Added", json = schema.object({ ["request-id"] = schema.string(), ["file-id"] = schema.integer() }) } })
M.fileset_complete = report("The dataset's lookup is done (workers)", {
  files = required(schema.integer()), ["files-skipped"] = schema.integer(), ["total-events"] = schema.integer(),
  ["total-bytes"] = schema.integer(), ["elapsed-time"] = schema.number(),
})
M.start = report("The transformation starts (workers)", nil, {
  [409] = { description = "Canceled or finished", json = message({ "Transformation request x is Canceled" }) },
})
M.file_status = report("Report a file's status (workers)", {
  timestamp = required(schema.string()), ["status-code"] = required(schema.string({ examples = { "failure" } })),
  ["pod-name"] = schema.string(), info = schema.string(),
})
M.file_complete = report("A file's result (workers)", {
  ["file-id"] = required(schema.integer()), ["file-path"] = schema.string(), status = required(schema.string()),
  ["total-time"] = schema.number(), ["total-bytes"] = schema.integer(), ["total-events"] = schema.integer(),
  ["avg-rate"] = schema.number(), ["num-messages"] = schema.integer(),
})

return M
