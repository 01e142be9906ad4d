// Strict request framing over a real socket: the request line's version, Transfer-Encoding and
// Content-Length, the CRLF after chunk data, field-line syntax, Host, NUL in the path. Each
// refused request is answered before any handler runs, with Connection: close, and nothing sent
// after it on the connection is parsed as a request.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::HttpResponse;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
// One worker, so `calls` counts every handler run of the server.
const char* const kRoutes = R"LUA(
local service = ...
local calls = 0
service:get("/hello", function() return "hello" end)
service:post("/echo", function(req) return 200, req:body() end)
service:delete("/item", function() calls = calls + 1; return 204 end)
service:get("/calls", function() return tostring(calls) end)
service:get("/path/:name", function(req) return req.path end)
)LUA";

const std::string kSmuggled = "GET /calls HTTP/1.1\r\nHost: x\r\n\r\n";

// Sends `raw` then a pipelined request; returns the first answer after checking that the
// connection is closed without an answer to the second.
HttpResponse refused(uint16_t port, const std::string& raw) {
  RawConnection connection(port);
  connection.send(raw + kSmuggled);
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->header("connection") == "close");
  CHECK_FALSE(connection.read_response(2s));  // the pipelined request is never answered
  CHECK(connection.closed_by_peer(2s));
  return *response;
}

int status_of(uint16_t port, const std::string& raw) {
  RawConnection connection(port);
  connection.send(raw);
  auto response = connection.read_response(5s);
  return response ? response->status : 0;
}

std::string handler_calls(uint16_t port) {
  RawConnection connection(port);
  connection.send(kSmuggled);
  auto response = connection.read_response(5s);
  REQUIRE(response);
  return response->body;
}
}  // namespace

TEST_CASE("only HTTP/1.0 and HTTP/1.1 request lines are answered", "[framing]") {
  TestServer server("app", kRoutes);
  CHECK(refused(server.port(), "GET /hello HTTX/1.1\r\nHost: x\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n").status == 505);
  CHECK(refused(server.port(), "GET /hello HTTP/9.9\r\nHost: x\r\n\r\n").status == 505);
  CHECK(refused(server.port(), "GET /hello\r\nHost: x\r\n\r\n").status == 400);
  CHECK(status_of(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
  CHECK(status_of(server.port(), "GET /hello HTTP/1.0\r\n\r\n") == 200);
}

TEST_CASE("a Transfer-Encoding other than chunked is refused before the handler runs",
          "[framing]") {
  TestServer server("app", kRoutes);
  auto deleting = [](const std::string& headers) {
    return "DELETE /item HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  };
  CHECK(refused(server.port(), deleting("Transfer-Encoding: chunked, identity")).status == 501);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: gzip")).status == 501);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: gzip, chunked")).status == 501);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: whatever")).status == 501);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: chunked, chunked")).status == 400);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"))
            .status == 400);
  CHECK(refused(server.port(), deleting("Transfer-Encoding: \"chunked\"")).status == 400);
  CHECK(
      refused(server.port(), deleting("Transfer-Encoding: chunked\r\nContent-Length: 5")).status ==
      400);
  CHECK(
      refused(server.port(), "DELETE /item HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
          .status == 400);
  CHECK(refused(
            server.port(),
            "DELETE /item HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
            .status == 400);
  CHECK(handler_calls(server.port()) == "0");

  // Exactly chunked, in any case, with optional whitespace, is the one coding accepted.
  CHECK(status_of(server.port(), deleting("Transfer-Encoding:  CHUNKED \t")) == 204);
  CHECK(status_of(server.port(), deleting("Transfer-Encoding: Chunked")) == 204);
  CHECK(handler_calls(server.port()) == "2");
}

TEST_CASE("chunk data must end in CRLF", "[framing]") {
  TestServer server("app", kRoutes);
  std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK(refused(server.port(), head + "5\r\nhelloXY0\r\n\r\n").status == 400);
  CHECK(refused(server.port(), head + "5\r\nhello\rX0\r\n\r\n").status == 400);
  CHECK(refused(server.port(), head + "5\r\nhello\n0\r\n\r\n").status == 400);

  // The same, with the two bytes arriving in writes of their own after the chunk data.
  RawConnection connection(server.port());
  connection.send(head + "5\r\nhello");
  std::this_thread::sleep_for(50ms);
  connection.send("\r");
  std::this_thread::sleep_for(50ms);
  connection.send("X0\r\n\r\n" + kSmuggled);
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 400);
  CHECK_FALSE(connection.read_response(2s));
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("a chunked body split into single bytes is still accepted", "[framing]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  std::string request =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
      "world\r\n0\r\n\r\n";
  for (char c : request) connection.send(std::string(1, c));
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == "hello world");
  connection.send(kSmuggled);
  CHECK(connection.read_response(5s));  // still in sync: the connection stays usable
}

TEST_CASE("obs-fold, malformed field names and control characters are refused", "[framing]") {
  TestServer server("app", kRoutes);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n").status ==
        400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tc\r\n\r\n").status ==
        400);
  CHECK(refused(server.port(),
                "DELETE /item HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: "
                "chunked\r\n\r\n0\r\n\r\n")
            .status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\n Host: x\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: b\x01\r\n\r\n").status ==
        400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: b\x7f\r\n\r\n").status ==
        400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\n\rX").status == 400);
  CHECK(handler_calls(server.port()) == "0");
  // Tabs and obs-text in values are allowed.
  CHECK(status_of(server.port(), "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\tb \xc3\xa9\r\n\r\n") ==
        200);
}

TEST_CASE("HTTP/1.1 needs exactly one Host", "[framing]") {
  TestServer server("app", kRoutes);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status == 400);
  CHECK(refused(server.port(), "GET /hello HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").status == 400);
  CHECK(status_of(server.port(), "GET /hello HTTP/1.1\r\nhOsT: a\r\n\r\n") == 200);
}

TEST_CASE("a NUL in the decoded path is refused", "[framing]") {
  TestServer server("app", kRoutes);
  CHECK(refused(server.port(), "GET /path/a%00b HTTP/1.1\r\nHost: x\r\n\r\n").status == 400);
  RawConnection connection(server.port());
  connection.send("GET /path/a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->body == "/path/a b");
}

TEST_CASE("pipelined requests with empty lines between them are all answered", "[framing]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += "\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  connection.send(
      batch +
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  for (int i = 0; i < 50; ++i) {
    auto response = connection.read_response(5s);
    REQUIRE(response);
    CHECK(response->status == 200);
  }
  auto last = connection.read_response(5s);
  REQUIRE(last);
  CHECK(last->body == "ok");
}

TEST_CASE("a client still sending a refused body reads the answer, not a reset (lingering close)",
          "[framing]") {
  TestServer server("app", kRoutes, [](depot::Options& options) { options.threads = 1; });
  RawConnection connection(server.port());
  connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n" +
                  std::string(256 * 1024, 'a'));
  std::this_thread::sleep_for(300ms);  // the 413 is out and the server is done with the connection
  // Without the half-close and drain, these bytes reach a closed socket: the kernel answers RST,
  // which discards the 413 still unread in our receive buffer.
  connection.send(std::string(256 * 1024, 'b'));
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 413);
  CHECK(connection.closed_by_peer(5s));
}
