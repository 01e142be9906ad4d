// depot.wait/depot.notify across replicas: with the kv store on PostgreSQL, a notify in one
// process wakes a task waiting in another (LISTEN/NOTIFY), and the notifier's own waiters are
// woken locally; depot.notify_local wakes only its own process's waiters.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
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

// Two replicas of kEventsScript sharing one PostgreSQL kv.
struct TwoReplicas {
  nlohmann::json config = depot::testing::kv_config("postgres");
  depot::testing::TestServer first{"app", kEventsScript,
                                   [this](depot::Options& options) { options.config = config; }};
  depot::testing::Replica second{config, first.data_dir(), kEventsScript};
};

// Sends `GET /wait/<name>?timeout=20` to the first replica and notifies `name` from the second
// until the waiter hears it: the first replica's listener connects in the background, and each
// notify before that reaches nobody (the wait's own timeout is far longer). Checks that every
// notify woke no waiter of the second replica; returns the waiter's answer, if any came.
std::optional<depot::testing::HttpResponse> notify_across(TwoReplicas& replicas,
                                                          const std::string& name) {
  using namespace std::chrono_literals;
  depot::testing::RawConnection waiting(replicas.first.port());
  waiting.send("GET /wait/" + name + "?timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::optional<depot::testing::HttpResponse> answer;
  for (int i = 0; i < 100 && !answer; ++i) {
    CHECK(http_request(replicas.second.port(), "POST", "/notify/" + name).body == R"({"woken":0})");
    answer = waiting.read_response(100ms);
  }
  return answer;
}

// POSTs `path` to `port` until it reports one waiter woken (the waiter's request may not have
// reached its wait yet); returns the last answer's body.
std::string notify_until_one_woken(uint16_t port, const std::string& path) {
  using namespace std::chrono_literals;
  std::string woken;
  for (int i = 0; i < 50 && woken != R"({"woken":1})"; ++i) {
    std::this_thread::sleep_for(20ms);
    woken = http_request(port, "POST", path).body;
  }
  return woken;
}
}  // namespace

TEST_CASE("depot.notify on one replica wakes depot.wait on another (PostgreSQL)",
          "[events][postgres]") {
  using namespace std::chrono_literals;
  if (!depot::testing::PostgresServer::available()) return;
  TwoReplicas replicas;
  REQUIRE(replicas.second.port() != 0);

  auto answer = notify_across(replicas, "entry-7");
  REQUIRE(answer);
  CHECK(answer->body == R"({"notified":true})");

  // A waiter on the notifier's own replica is woken locally, and counted.
  depot::testing::RawConnection local(replicas.second.port());
  local.send("GET /wait/entry-8 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(notify_until_one_woken(replicas.second.port(), "/notify/entry-8") == R"({"woken":1})");
  auto local_answer = local.read_response(5s);
  REQUIRE(local_answer);
  CHECK(local_answer->body == R"({"notified":true})");
}

TEST_CASE("depot.notify_local wakes this replica's waiters and no other's (PostgreSQL)",
          "[events][postgres]") {
  using namespace std::chrono_literals;
  if (!depot::testing::PostgresServer::available()) return;
  TwoReplicas replicas;
  REQUIRE(replicas.second.port() != 0);

  // First the relay works (a depot.notify crosses), so that what follows could cross too.
  REQUIRE(notify_across(replicas, "relay-up"));

  depot::testing::RawConnection remote(replicas.first.port());
  remote.send("GET /wait/entry-9?timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  depot::testing::RawConnection local(replicas.second.port());
  local.send("GET /wait/entry-9 HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(notify_until_one_woken(replicas.second.port(), "/notify_local/entry-9") ==
        R"({"woken":1})");
  auto local_answer = local.read_response(5s);
  REQUIRE(local_answer);
  CHECK(local_answer->body == R"({"notified":true})");
  // The other replica's waiter hears nothing and times out.
  auto remote_answer = remote.read_response(5s);
  REQUIRE(remote_answer);
  CHECK(remote_answer->body == R"({"notified":false})");
}
