// One error path: every producer of an error answer (the parser's 4xx, 404 / 405, 408 for a slow
// head or body, 413, a route's deadline, a Lua failure) answers in the shape of the owning
// service's on_error, over real HTTP. Another service without on_error keeps the default shape.
#include <catch2/catch.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::HttpResponse;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kShaped = R"LUA(
local depot = require "depot"
local service = ...
service:get("/hello", function() return "hi" end)
service:post("/body", function(req) return #req:body() end)
service:post("/read", function(req)
  local chunk = req:read()
  while chunk do chunk = req:read() end
  return "read"
end)
service:get("/nap", function() depot.sleep(5); return "late" end, { deadline = 0.2 })
service:get("/boom", function() error("boom") end)
service:on_error(function(status, message)
  return status, "shaped " .. status .. ": " .. message, { ["Content-Type"] = "text/plain", ["X-Shaped"] = "yes" }
end)
)LUA";

const char* const kPlain = R"LUA(
local service = ...
service:get("/hello", function() return "plain hi" end)
)LUA";

TestServer shaped_server() {
  return TestServer({{"shaped", kShaped, {"/"}}, {"plain", kPlain, {"/plain"}}},
                    [](depot::Options& options) {
                      options.limits.header_timeout = 300ms;
                      options.limits.body_timeout = 300ms;
                      options.limits.max_body_bytes = 1000;
                    });
}

void check_shaped(const HttpResponse& response, int status) {
  CHECK(response.status == status);
  CHECK(response.header("x-shaped") == "yes");
  CHECK(response.body.rfind("shaped " + std::to_string(status) + ": ", 0) == 0);
}

HttpResponse raw_answer(uint16_t port, const std::string& bytes,
                        std::chrono::milliseconds timeout = 10s) {
  RawConnection connection(port);
  connection.send(bytes);
  std::optional<HttpResponse> response = connection.read_response(timeout);
  REQUIRE(response);
  return *response;
}
}  // namespace

TEST_CASE("parser errors answer in the owning service's error shape", "[error_answer]") {
  TestServer server = shaped_server();
  check_shaped(raw_answer(server.port(), "GET /hello HTTX/1.1\r\nHost: t\r\n\r\n"), 400);
  check_shaped(raw_answer(server.port(), "GET /hello HTTP/1.1\r\n\r\n"), 400);  // no Host
  check_shaped(raw_answer(server.port(),
                          "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"),
               501);
  check_shaped(raw_answer(server.port(), "GET /hello HTTP/1.1\r\nHost: t\r\nX: " +
                                             std::string(20000, 'x') + "\r\n\r\n"),
               431);
  // The path names the service that owns it: under /plain, the default shape.
  HttpResponse plain = raw_answer(server.port(), "GET /plain/hello HTTX/1.1\r\nHost: t\r\n\r\n");
  CHECK(plain.status == 400);
  CHECK(plain.header("x-shaped").empty());
  CHECK(plain.body.find("\"status\":400") != std::string::npos);
}

TEST_CASE("404 and 405 answer in the service's error shape", "[error_answer]") {
  TestServer server = shaped_server();
  check_shaped(http_request(server.port(), "GET", "/nowhere"), 404);
  HttpResponse not_allowed = http_request(server.port(), "DELETE", "/hello");
  check_shaped(not_allowed, 405);
  CHECK(not_allowed.header("allow").find("GET") != std::string::npos);
}

TEST_CASE("a head or body too slow (408) answers in the service's error shape", "[error_answer]") {
  TestServer server = shaped_server();
  HttpResponse head = raw_answer(server.port(), "GET /hello HTTP/1.1\r\nHo");
  check_shaped(head, 408);
  CHECK(head.body == "shaped 408: timed out reading the request head");
  HttpResponse body =
      raw_answer(server.port(), "POST /read HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  check_shaped(body, 408);
  CHECK(body.body == "shaped 408: timed out reading the request body");
}

TEST_CASE("413, a route's deadline and a Lua failure answer in the service's error shape",
          "[error_answer]") {
  TestServer server = shaped_server();
  check_shaped(http_request(server.port(), "POST", "/body", std::string(2000, 'b')), 413);
  check_shaped(http_request(server.port(), "GET", "/nap"), 503);
  HttpResponse failure = http_request(server.port(), "GET", "/boom");
  check_shaped(failure, 500);
  CHECK(failure.body == "shaped 500: internal server error");  // never the Lua error itself
  CHECK(http_request(server.port(), "GET", "/plain/hello").body == "plain hi");
}
