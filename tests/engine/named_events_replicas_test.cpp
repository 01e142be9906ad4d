// depot.wait/depot.notify across replicas: with the kv store on PostgreSQL, a notify in one
// process wakes a task waiting in another (LISTEN/NOTIFY), and the notifier's own waiters are
// woken locally; depot.notify_local wakes only its own process's waiters.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/kv_backends.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/replica.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;

namespace {
const char* const kEventsScript = R"LUA(
local depot = require "depot"
local service = ...
service:get("/wait/:name", function(req)
  return { notified = depot.wait(req.params.name, tonumber(req.query.timeout) or 10) }
end)
service:post("/notify/:name", function(req) return { woken = depot.notify(req.params.name) } end)
service:post("/notify_local/:name", function(req)
  return { woken = depot.notify_local(req.params.name) }
end)
)LUA";
}  // namespace

TEST_CASE("depot.notify on one replica wakes depot.wait on another (PostgreSQL)",
          "[events][postgres]") {
  using namespace std::chrono_literals;
  if (!depot::testing::PostgresServer::available()) return;
  nlohmann::json config = depot::testing::kv_config("postgres");
  depot::testing::TestServer first("app", kEventsScript,
                                   [&](depot::Options& options) { options.config = config; });
  depot::testing::Replica second(config, first.data_dir(), kEventsScript);
  REQUIRE(second.port() != 0);

  depot::testing::RawConnection waiting(first.port());
  waiting.send("GET /wait/entry-7?timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n");
  // The first replica's listener connects in the background: notify until the waiter hears it
  // (each notify before that reaches nobody); the wait's own timeout is far longer.
  std::optional<depot::testing::HttpResponse> answer;
  for (int i = 0; i < 100 && !answer; ++i) {
    CHECK(http_request(second.port(), "POST", "/notify/entry-7").body == R"({"woken":0})");
    answer = waiting.read_response(100ms);
  }
  REQUIRE(answer);
  CHECK(answer->body == R"({"notified":true})");

  // A waiter on the notifier's own replica is woken locally, and counted.
  depot::testing::RawConnection local(second.port());
  local.send("GET /wait/entry-8 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string woken;
  for (int i = 0; i < 50 && woken != R"({"woken":1})"; ++i) {
    std::this_thread::sleep_for(20ms);
    woken = http_request(second.port(), "POST", "/notify/entry-8").body;
  }
  CHECK(woken == R"({"woken":1})");
  auto local_answer = local.read_response(5s);
  REQUIRE(local_answer);
  CHECK(local_answer->body == R"({"notified":true})");
}

TEST_CASE("depot.notify_local wakes this replica's waiters and no other's (PostgreSQL)",
          "[events][postgres]") {
  using namespace std::chrono_literals;
  if (!depot::testing::PostgresServer::available()) return;
  nlohmann::json config = depot::testing::kv_config("postgres");
  depot::testing::TestServer first("app", kEventsScript,
                                   [&](depot::Options& options) { options.config = config; });
  depot::testing::Replica second(config, first.data_dir(), kEventsScript);
  REQUIRE(second.port() != 0);

  // First the relay works (a depot.notify crosses), so that what follows could cross too.
  depot::testing::RawConnection ready(first.port());
  ready.send("GET /wait/relay-up?timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<depot::testing::HttpResponse> answer;
  for (int i = 0; i < 100 && !answer; ++i) {
    http_request(second.port(), "POST", "/notify/relay-up");
    answer = ready.read_response(100ms);
  }
  REQUIRE(answer);

  depot::testing::RawConnection remote(first.port());
  remote.send("GET /wait/entry-9?timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  depot::testing::RawConnection local(second.port());
  local.send("GET /wait/entry-9 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string woken;
  for (int i = 0; i < 50 && woken != R"({"woken":1})"; ++i) {
    std::this_thread::sleep_for(20ms);
    woken = http_request(second.port(), "POST", "/notify_local/entry-9").body;
  }
  CHECK(woken == R"({"woken":1})");
  auto local_answer = local.read_response(5s);
  REQUIRE(local_answer);
  CHECK(local_answer->body == R"({"notified":true})");
  // The other replica's waiter hears nothing and times out.
  auto remote_answer = remote.read_response(5s);
  REQUIRE(remote_answer);
  CHECK(remote_answer->body == R"({"notified":false})");
}
