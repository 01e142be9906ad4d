-- The image cache's API documentation: the info of its OpenAPI document and the documentation
-- options of each route (init.lua passes them to service:get/post), in the original's shapes.
local schema = require "openapi.schema"
local required = schema.required

local M = {}

local IMAGE_ID = schema.string({ description = "An image id: the SHA-256 of the query and its expiry, as POST /requests returned it",
  pattern = "^[0-9a-f]{64}_[0-9]+(\\.[0-9]+)?$",
  examples = { "2c1465251a2a9a7543a5d9ae7c1d95f07d0ec4975039f81b481c5b3c62cfda6b_1620973821.2844" } })

-- FastAPI's validation errors (pydantic v1).
local VALIDATION_ERROR = schema.object({
  detail = required(schema.array(schema.object({
    loc = required(schema.array(schema.one_of({ schema.string(), schema.integer() }), { description = "Where: [\"body\"], [\"body\", \"ttl\"]" })),
    msg = required(schema.string({ examples = { "value is not a valid integer" } })),
    type = required(schema.string({ examples = { "type_error.integer" } })),
  }))),
}, { description = "FastAPI's validation error (pydantic v1)" })

local IMAGE_ERROR = schema.object({
  loc = required(schema.string({ description = "The image id" })),
  msg = required(schema.one_of({ schema.string(), schema.array(schema.string()) },
    { description = "What went wrong; for a Kentik error, Kentik's answer (a list of one string) or the transport error (a string)" })),
  type = required(schema.string({ enum = { "error", "Kentik API error" } })),
})

local ENTRY = schema.object({
  id = required(schema.string({ description = "The image id" })),
  type = required(schema.string({ enum = { "api_request", "api_error", "image", "invalid" } })),
  size = required(schema.integer({ description = "Bytes of the stored payload" })),
  expiration = required(schema.string({ description = "ISO 8601 UTC and the time left, or <invalid>",
    examples = { "2021-05-14T06:30:21.284400+00:00 (remaining: 0:05:21.284400)" } })),
})

M.info = {
  title = "Kentik image cache",
  version = "1.0",
  description = "Fetches Kentik topXchart images in the background and serves them until their id expires. "
    .. "Unknown paths answer 404 {\"detail\": \"Not Found\"}, a wrong method 405 {\"detail\": \"Method Not Allowed\"}.",
  responses = {
    [500] = { description = "Unexpected server error", text = schema.string({ const = "Internal Server Error" }) },
  },
}

M.create_request = {
  summary = "Request an image",
  description = "Returns the image's id at once and fetches the chart from the Kentik API in the background.",
  body = {
    description = "A JSON object (other fields are ignored)",
    json = schema.object({
      api_query = required(schema.any({ description = "The Kentik topXchart query, sent to Kentik with null members dropped" })),
      ttl = schema.integer({ description = "Seconds the image is kept (default: DEFAULT_TTL); \"60\", 60.7 and true are accepted as pydantic v1 coerces them" }),
    }),
  },
  responses = {
    [200] = { description = "The image's id", json = schema.object({ id = required(IMAGE_ID) }) },
    [400] = { description = "api_query missing or null", json = schema.object({
      loc = required(schema.object({ api_query = schema.null(), ttl = schema.integer() }, { description = "The request as read" })),
      msg = required(schema.string({ const = "Incomplete request, missing 'api_query'" })),
      type = required(schema.string({ const = "invalid request" })),
    }) },
    [413] = { description = "Body over the server's limit", json = schema.object({ detail = required(schema.string()) }) },
    [422] = { description = "Body missing, not JSON, not an object, or ttl not an integer", json = VALIDATION_ERROR },
  },
}

M.image = {
  summary = "Get an image",
  description = "Waits (up to ENTRY_WAIT_TIMEOUT) while the image is being fetched, then answers it, or the error Kentik gave.",
  path = { id = IMAGE_ID },
  responses = {
    [200] = { description = "The image", content = {
      ["image/png"] = schema.binary(), ["image/jpeg"] = schema.binary(),
      ["image/svg+xml"] = schema.binary(), ["application/pdf"] = schema.binary(),
    } },
    [404] = { description = "Unknown or expired id (msg \"Image not found\")", json = IMAGE_ERROR },
    [500] = { description = "Still being fetched when the wait ended", json = IMAGE_ERROR },
    default = { description = "Kentik's error, with Kentik's status (type \"Kentik API error\")", json = IMAGE_ERROR },
  },
}

M.info_listing = {
  summary = "List the cache",
  description = "Every active and pending entry with its type, size and expiration.",
  responses = {
    [200] = { description = "The listing", json = schema.object({
      active_count = required(schema.integer()), pending_count = required(schema.integer()),
      active_entries = required(schema.array(ENTRY)), pending_entries = required(schema.array(ENTRY)),
    }) },
  },
}

M.favicon = {
  summary = "The favicon",
  responses = { [200] = { description = "The icon", content = { ["image/x-icon"] = schema.binary() } } },
}

return M
