// The openapi helper (scripts/lib/openapi) under services of the test's own: the document of a
// prefix two services share, "*" routes, routes under some mounts or left out, the schema
// vocabulary's JSON Schema, "openapi": false, and documentation mistakes refused at load.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using nlohmann::json;

namespace {

const char* const kItems = R"LUA(
local schema = require "openapi.schema"
local service = ...
service:get("/items/:id", function(req) return { id = req.params.id } end, {
  summary = "One item",
  path = { id = schema.string({ description = "The id", pattern = "^[0-9]+$" }) },
  query = { fields = schema.required(schema.string({ enum = { "all", "some" } })) },
  responses = { [200] = { description = "The item", json = schema.object({
    id = schema.required(schema.string()), tags = schema.array(schema.string()), note = schema.nullable(schema.string()),
  }, { additional = false }) } },
})
service:any("/items/:id", function() return 405 end, { summary = "Anything else" })
service:get("/second-only", function() return "2" end, { summary = "Under /second", mounts = { "/second" } })
service:get("/hidden", function() return "h" end, { openapi = false })
require("openapi").serve(service, { title = "Items", version = "2.0" })
)LUA";

const char* const kHello = R"LUA(
local service = ...
service:get("/hello", function() return "hi" end, { summary = "Hi" })
require("openapi").serve(service, { title = "Hello", version = "1.0" })
)LUA";

// A server with the repository's scripts/lib and the given services (name, source, mounts, config).
std::unique_ptr<TestServer> serve(const std::vector<TestServer::Service>& services) {
  auto server = std::make_unique<TestServer>(
      std::vector<TestServer::Service>{},
      [](depot::Options& options) { options.scripts_dir = DEPOT_SOURCE_DIR "/scripts"; });
  for (const auto& service : services) {
    server->write_script(service.name, service.source);
    std::string error = server->server().add_service(
        {service.name, server->scripts_dir() / service.name, service.mounts, service.config});
    if (!error.empty()) throw std::runtime_error(error);
  }
  return server;
}

json document(TestServer& server, const std::string& path) {
  auto response = http_request(server.port(), "GET", path);
  REQUIRE(response.status == 200);
  CHECK(response.header("content-type") == "application/json");
  return json::parse(response.body);
}

}  // namespace

TEST_CASE("openapi: one document per prefix, for every service there, from their routes",
          "[openapi]") {
  auto server = serve({{"items", kItems, {"/", "/second"}}, {"hello", kHello, {"/"}}});
  json root = document(*server, "/openapi.json");
  CHECK(root["openapi"] == "3.1.0");
  CHECK(root["info"] == json({{"title", "Items, Hello"}, {"version", "2.0, 1.0"}}));
  CHECK(root["servers"] == json::parse(R"([{"url": "/"}])"));
  CHECK(root["tags"][0]["name"] == "items");
  CHECK(root["tags"][1]["name"] == "hello");
  // The pattern's parameter, the query's, with descriptions lifted out of their schemas.
  json get = root["paths"]["/items/{id}"]["get"];
  CHECK(get["operationId"] == "items_get_items_id");
  CHECK(get["parameters"] == json::parse(R"([
    {"name": "id", "in": "path", "required": true, "description": "The id", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    {"name": "fields", "in": "query", "required": true, "schema": {"type": "string", "enum": ["all", "some"]}}])"));
  CHECK(get["responses"]["200"]["content"]["application/json"]["schema"] == json::parse(R"({
    "type": "object", "additionalProperties": false, "required": ["id"],
    "properties": {"id": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                   "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}}})"));
  // "*" stands for the methods no other route of the path has; an undocumented answer says so.
  json item = root["paths"]["/items/{id}"];
  CHECK(item["get"]["summary"] == "One item");
  for (const char* method : {"put", "post", "delete", "patch", "options"})
    CHECK(item[method]["summary"] == "Anything else");
  CHECK(item["post"]["responses"] ==
        json::parse(R"({"default": {"description": "Not documented"}})"));
  CHECK(root["paths"]["/hello"]["get"]["tags"] == json::parse(R"(["hello"])"));
  // Left out: a route of another mount, one marked openapi = false, the pages themselves.
  CHECK_FALSE(root["paths"].contains("/second-only"));
  CHECK_FALSE(root["paths"].contains("/hidden"));
  CHECK_FALSE(root["paths"].contains("/openapi.json"));
  CHECK(http_request(server->port(), "GET", "/hidden").body == "h");

  json second = document(*server, "/second/openapi.json");
  CHECK(second["info"] == json({{"title", "Items"}, {"version", "2.0"}}));
  CHECK(second["servers"] == json::parse(R"([{"url": "/second"}])"));
  CHECK(second["paths"].contains("/second-only"));
  CHECK_FALSE(second["paths"].contains("/hello"));
  auto page = http_request(server->port(), "GET", "/second/redoc");
  CHECK(page.status == 200);
  CHECK(page.body.find(R"(<redoc spec-url="/second/openapi.json">)") != std::string::npos);
  CHECK(page.header("content-security-policy").find("default-src 'self'") == 0);
}

TEST_CASE("openapi: \"openapi\": false in a service's section leaves it out", "[openapi]") {
  auto server =
      serve({{"items", kItems, {"/", "/second"}, {{"openapi", false}}}, {"hello", kHello, {"/"}}});
  json root = document(*server, "/openapi.json");
  CHECK(root["info"]["title"] == "Hello");
  CHECK(root["paths"].size() == 1);
  CHECK(http_request(server->port(), "GET", "/second/openapi.json").status == 404);
}

TEST_CASE("openapi: a mistake in a route's documentation refuses the scripts", "[openapi]") {
  auto refused = [](const std::string& source) {
    try {
      serve({{"broken", source, {"/"}}});
    } catch (const std::runtime_error& error) {
      return std::string(error.what());
    }
    return std::string("loaded");
  };
  CHECK_THAT(refused(R"LUA(
local schema = require "openapi.schema"
local service = ...
service:get("/x", function() end, { query = { q = schema.string({ descripton = "typo" }) } })
)LUA"),
             Catch::Contains("schema.string: unknown option 'descripton'"));
  CHECK_THAT(refused(R"LUA(
local service = ...
service:get("/x", function() end, { responses = { [200] = {} } })
require("openapi").serve(service, { title = "Broken", version = "1" })
)LUA"),
             Catch::Contains("openapi: broken: GET /x: response 200 needs a description"));
  CHECK_THAT(refused(R"LUA(
local service = ...
service:get("/x", function() end, { mounts = { "/elsewhere" } })
)LUA"),
             Catch::Contains("route: options.mounts: /elsewhere is not a mount of broken"));
}
