// Hostile clients over real sockets: a head trickled a byte at a time is cut at header_timeout
// from its first byte; at max_connections the oldest idle connection makes room, and with none
// idle a new connection is refused with 503; a client pipelining requests without reading its
// answers stops being served until it reads.
#include <catch2/catch.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::Options;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kRoutes = R"LUA(
local service = ...
local calls = 0
service:get("/hello", function() return "hello" end)
service:get("/big", function() calls = calls + 1; return string.rep("x", 16384) end)
service:get("/calls", function() return tostring(calls) end)
)LUA";

std::string get(RawConnection& connection, const std::string& target) {
  connection.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto response = connection.read_response(5s);
  return response ? std::to_string(response->status) + " " + response->body : "none";
}
}  // namespace

TEST_CASE("a head trickled byte by byte is cut at header_timeout from its first byte", "[limits]") {
  TestServer server("app", kRoutes,
                    [](Options& options) { options.limits.header_timeout = 300ms; });
  RawConnection connection(server.port());
  std::string head = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(100, 'a');
  std::string answer;
  auto started = std::chrono::steady_clock::now();
  for (char c : head) {
    connection.send(std::string(1, c));
    answer = connection.read_some(100ms);
    if (!answer.empty()) break;
  }
  auto cut_after = std::chrono::steady_clock::now() - started;
  CHECK(answer.rfind("HTTP/1.1 408 ", 0) == 0);
  CHECK(cut_after < 3s);  // the timeout (300 ms) plus the once-a-second sweep
  CHECK(connection.closed_by_peer(2s));
}

TEST_CASE("header_timeout leaves idle keep-alive connections alone", "[limits]") {
  TestServer server("app", kRoutes,
                    [](Options& options) { options.limits.header_timeout = 300ms; });
  RawConnection fresh(server.port());
  RawConnection reused(server.port());
  CHECK(get(reused, "/hello") == "200 hello");
  std::this_thread::sleep_for(1500ms);
  CHECK(get(fresh, "/hello") == "200 hello");
  CHECK(get(reused, "/hello") == "200 hello");
}

TEST_CASE("at max_connections the oldest idle connection is closed for a new one", "[limits]") {
  TestServer server("app", kRoutes, [](Options& options) { options.limits.max_connections = 3; });
  RawConnection oldest(server.port());
  CHECK(get(oldest, "/hello") == "200 hello");
  RawConnection newer(server.port());
  CHECK(get(newer, "/hello") == "200 hello");
  RawConnection busy(server.port());
  busy.send("GET /hello HTTP/1.1\r\n");  // a head under way is not idle
  std::this_thread::sleep_for(100ms);

  RawConnection incoming(server.port());
  CHECK(get(incoming, "/hello") == "200 hello");
  CHECK(oldest.closed_by_peer(2s));
  CHECK(get(newer, "/hello") == "200 hello");
  busy.send("Host: x\r\n\r\n");
  auto response = busy.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 200);
}

TEST_CASE("at max_connections with none idle a new connection is answered 503", "[limits]") {
  TestServer server("app", kRoutes, [](Options& options) { options.limits.max_connections = 2; });
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 2; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server.port()));
    slow.back()->send("GET /hello HTTP/1.1\r\n");
  }
  std::this_thread::sleep_for(100ms);
  RawConnection refused(server.port());
  auto response = refused.read_response(5s);
  REQUIRE(response);
  CHECK(response->status == 503);
  CHECK(response->header("connection") == "close");
  CHECK(refused.closed_by_peer(2s));

  slow.clear();  // their slots come back
  std::this_thread::sleep_for(200ms);
  RawConnection later(server.port());
  CHECK(get(later, "/hello") == "200 hello");
}

TEST_CASE("a client that pipelines without reading is not served until it reads", "[limits]") {
  TestServer server("app", kRoutes);
  RawConnection greedy(server.port());
  constexpr int kRequests = 1000;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) batch += "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  greedy.send(batch);
  std::this_thread::sleep_for(1s);

  // Answered without backpressure, all 1000 answers (16 MiB) would wait in server memory.
  RawConnection observer(server.port());
  std::string calls = get(observer, "/calls");
  REQUIRE(calls.rfind("200 ", 0) == 0);
  int served = std::stoi(calls.substr(4));
  CHECK(served < kRequests / 2);

  for (int i = 0; i < kRequests; ++i) {
    auto response = greedy.read_response(10s);
    REQUIRE(response);
    REQUIRE(response->body.size() == 16384);
  }
  CHECK(get(observer, "/calls") == "200 " + std::to_string(kRequests));
}
