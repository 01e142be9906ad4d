// HTTP/1.1 behaviour over real sockets against an embedded server: keep-alive, pipelining,
// 100-continue, limits, malformed input, HEAD, Range, ETag, errors in scripts.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kRoutes = R"LUA(
local service = ...
service:get("/hello", function() return "hello\n" end)
service:post("/echo", function(req) return 200, req:body() end)
service:post("/count", function(req)
  local total = 0
  while true do
    local chunk, err = req:read()
    if err then error(err) end
    if not chunk then break end
    total = total + #chunk
  end
  return { bytes = total }
end)
service:get("/boom", function() error("kaput") end)
service:get("/teapot", function() local depot = require "depot"; depot.fail(418, "short and stout") end)
service:get("/query", function(req) return { a = req.query.a, b = req.query.b, ua = req:header("User-Agent") } end)
service:get("/items/:id", function(req) return { id = req.params.id } end)
service:get("/file", function(req, res) assert(res:file(req.query.path)) end)
service:post("/deny", function() return 403, { denied = true } end)
)LUA";
}  // namespace

TEST_CASE("keep-alive is the default for HTTP/1.1 without a Connection header", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  for (int i = 0; i < 3; ++i) {
    connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    auto response = connection.read_response();
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "hello\n");
    CHECK(response->header("connection").empty());
    CHECK_FALSE(response->header("x-request-id").empty());
  }
}

TEST_CASE("HTTP/1.0 closes unless keep-alive is asked for", "[http]") {
  TestServer server("app", kRoutes);
  {
    RawConnection connection(server.port());
    connection.send("GET /hello HTTP/1.0\r\n\r\n");
    auto response = connection.read_response();
    REQUIRE(response);
    CHECK(response->header("connection") == "close");
    CHECK(connection.closed_by_peer(2s));
  }
  RawConnection connection(server.port());
  connection.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->header("connection") == "keep-alive");
  connection.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(connection.read_response());
}

TEST_CASE("pipelined requests in one write are answered in order", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send(
      "GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n");
  auto first = connection.read_response();
  auto second = connection.read_response();
  auto third = connection.read_response();
  auto fourth = connection.read_response();
  REQUIRE((first && second && third && fourth));
  CHECK(first->body == R"({"id":"1"})");
  CHECK(second->body == "hello");
  CHECK(third->status == 404);
  CHECK(fourth->body == R"({"id":"2"})");
}

TEST_CASE("Expect: 100-continue gets 100 Continue before the body is sent", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = connection.read_some(2s);
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  connection.send("ping");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->body == "ping");
}

TEST_CASE("a handler that answers without reading gets no 100 Continue and closes", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send(
      "POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: "
      "100-continue\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->status == 403);
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("chunked request bodies are decoded and streamed", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send("POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string chunk(1000, 'x');
  for (int i = 0; i < 100; ++i) connection.send("3e8\r\n" + chunk + "\r\n");
  connection.send("0\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->body == R"({"bytes":100000})");
}

TEST_CASE("req:body() over its limit is 413", "[http]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.max_body_bytes = 1000; });
  auto response = http_request(server.port(), "POST", "/echo", std::string(2000, 'a'));
  CHECK(response.status == 413);
}

TEST_CASE("a Lua error is a 500 with the request id, and the next request works", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->status == 500);
  CHECK(response->body.find(response->header("x-request-id")) != std::string::npos);
  CHECK(response->body.find("kaput") == std::string::npos);  // internals stay in the log
  connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  auto next = connection.read_response();
  REQUIRE(next);
  CHECK(next->status == 200);
}

TEST_CASE("depot.fail answers with the status and message", "[http]") {
  TestServer server("app", kRoutes);
  auto response = http_request(server.port(), "GET", "/teapot");
  CHECK(response.status == 418);
  CHECK(response.body.find("short and stout") != std::string::npos);
}

TEST_CASE("unknown paths are 404 and wrong methods 405 with Allow", "[http]") {
  TestServer server("app", kRoutes);
  CHECK(http_request(server.port(), "GET", "/nothing").status == 404);
  auto response = http_request(server.port(), "DELETE", "/hello");
  CHECK(response.status == 405);
  CHECK(response.header("allow") == "GET, HEAD");
}

TEST_CASE("query strings and case-insensitive headers reach the handler", "[http]") {
  TestServer server("app", kRoutes);
  auto response =
      http_request(server.port(), "GET", "/query?a=1&b=two%20words&a=3", "", "user-AGENT: tester");
  CHECK(response.body == R"({"a":"1","b":"two words","ua":"tester"})");
}

TEST_CASE("malformed requests get 400 and a clean close", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send("THIS IS NOT HTTP\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->status == 400);
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("too many or too large headers get 431", "[http]") {
  TestServer server("app", kRoutes, [](depot::Options& options) {
    options.limits.max_header_count = 10;
    options.limits.max_header_bytes = 2000;
  });
  std::string many;
  for (int i = 0; i < 20; ++i) many += "X-Header-" + std::to_string(i) + ": v\r\n";
  RawConnection first(server.port());
  first.send("GET /hello HTTP/1.1\r\nHost: x\r\n" + many + "\r\n");
  auto response = first.read_response();
  REQUIRE(response);
  CHECK(response->status == 431);
  RawConnection second(server.port());
  second.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(3000, 'b') + "\r\n\r\n");
  response = second.read_response();
  REQUIRE(response);
  CHECK(response->status == 431);
}

TEST_CASE("an idle request head times out with 408", "[http]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.header_timeout = 1s; });
  RawConnection connection(server.port());
  connection.send("GET /hello HTTP/1.1\r\nHost:");
  auto response = connection.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 408);
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("files: HEAD, Range, ETag and 304", "[http]") {
  TestServer server("app", kRoutes);
  auto path = server.data_dir() / "sample.txt";
  std::string content;
  for (int i = 0; i < 1000; ++i) content += std::to_string(i % 10);
  std::ofstream(path) << content;
  std::string target = "/file?path=" + path.string();

  auto whole = http_request(server.port(), "GET", target);
  CHECK(whole.status == 200);
  CHECK(whole.body == content);
  CHECK(whole.header("content-type") == "text/plain; charset=utf-8");
  std::string etag = whole.header("etag");
  CHECK_FALSE(etag.empty());

  auto head = http_request(server.port(), "HEAD", target);
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == "1000");
  CHECK(head.body.empty());

  auto range = http_request(server.port(), "GET", target, "", "Range: bytes=10-19");
  CHECK(range.status == 206);
  CHECK(range.body == content.substr(10, 10));
  CHECK(range.header("content-range") == "bytes 10-19/1000");

  auto suffix = http_request(server.port(), "GET", target, "", "Range: bytes=-5");
  CHECK(suffix.body == content.substr(995));

  auto outside = http_request(server.port(), "GET", target, "", "Range: bytes=5000-");
  CHECK(outside.status == 416);
  CHECK(outside.header("content-range") == "bytes */1000");

  auto cached = http_request(server.port(), "GET", target, "", "If-None-Match: " + etag);
  CHECK(cached.status == 304);
  CHECK(cached.body.empty());
}

TEST_CASE("a client that half-closes after its request gets the answer, then the close", "[http]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbye");
  connection.shutdown_write();
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->body == "bye");
  CHECK(connection.closed_by_peer(2s));
}
