// Request parsing edge cases over a real socket: smuggling-shaped heads, bad chunking, odd line
// endings, split writes. Each must end in a clean answer, never a hang or a crash.
#include <catch2/catch.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kEcho = R"LUA(
local service = ...
service:post("/echo", function(req) return 200, req:body() end)
service:get("/hello", function() return "hello" end)
)LUA";

int status_of(uint16_t port, const std::string& raw) {
  RawConnection connection(port);
  connection.send(raw);
  auto response = connection.read_response(5s);
  return response ? response->status : 0;
}
}  // namespace

TEST_CASE("Content-Length together with chunked encoding is refused", "[parser]") {
  TestServer server("app", kEcho);
  CHECK(status_of(server.port(),
                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n"
                  "5\r\nhello\r\n0\r\n\r\n") == 400);
}

TEST_CASE("two different Content-Length headers are refused", "[parser]") {
  TestServer server("app", kEcho);
  CHECK(status_of(server.port(),
                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: "
                  "6\r\n\r\nhello!") == 400);
}

TEST_CASE("a malformed chunk size fails the body and closes", "[parser]") {
  TestServer server("app", kEcho);
  RawConnection connection(server.port());
  connection.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 400);
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("a request split into single bytes is parsed", "[parser]") {
  TestServer server("app", kEcho);
  RawConnection connection(server.port());
  std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
  for (char c : request) connection.send(std::string(1, c));
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->body == "hello world");
}

TEST_CASE("bare LF line endings are accepted", "[parser]") {
  TestServer server("app", kEcho);
  CHECK(status_of(server.port(), "GET /hello HTTP/1.1\nHost: x\n\n") == 200);
}

TEST_CASE("an overlong request line is 431", "[parser]") {
  TestServer server("app", kEcho);
  CHECK(status_of(server.port(),
                  "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n") == 431);
}

TEST_CASE("an unsupported Expect is 417, an Upgrade is ignored and the connection closes",
          "[parser]") {
  TestServer server("app", kEcho);
  CHECK(
      status_of(server.port(),
                "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx") ==
      417);
  RawConnection connection(server.port());
  connection.send(
      "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->header("connection") == "close");
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("a client that closes mid-body leaves the server serving", "[parser]") {
  TestServer server("app", kEcho);
  {
    RawConnection connection(server.port());
    connection.send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part of it");
  }
  CHECK(status_of(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
}
