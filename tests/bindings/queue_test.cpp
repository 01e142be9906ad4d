// queue: durable jobs run at least once, retry with backoff, dead-letter after their attempts,
// and survive a restart.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kQueueService = R"LUA(
local queue = require "queue"
local kv = require "kv"
local service = ...
local results = kv.open("results")
local work = queue.open("work", { attempts = 3, backoff = 0.05, poll = 0.05, max_pending = 5 })
work:handler(function(payload, job)
  require("depot").sleep(0.01)
  if payload.fail_until and job.attempt < payload.fail_until then error("not yet") end
  results:put(payload.name, { attempt = job.attempt })
end)
service:on_start(function() work:start() end)
service:post("/push/:name", function(req)
  local id, err = work:push({ name = req.params.name, fail_until = tonumber(req.query.fail_until) },
                            { delay = tonumber(req.query.delay) or 0 })
  if not id then return 503, { error = err } end
  return { id = id }
end)
service:get("/result/:name", function(req) return results:get(req.params.name) or 404 end)
service:get("/stats", function() return work:stats() end)
)LUA";

std::string wait_for_result(uint16_t port, const std::string& name) {
  for (int i = 0; i < 100; ++i) {
    auto response = http_request(port, "GET", "/result/" + name);
    if (response.status == 200) return response.body;
    std::this_thread::sleep_for(50ms);
  }
  return "timed out";
}
}  // namespace

TEST_CASE("queued jobs run, retry with backoff, and dead-letter after their attempts", "[queue]") {
  TestServer server("app", kQueueService);
  CHECK(http_request(server.port(), "POST", "/push/simple").status == 200);
  CHECK(wait_for_result(server.port(), "simple") == R"({"attempt":1})");
  CHECK(http_request(server.port(), "POST", "/push/flaky?fail_until=3").status == 200);
  CHECK(wait_for_result(server.port(), "flaky") == R"({"attempt":3})");
  CHECK(http_request(server.port(), "POST", "/push/doomed?fail_until=9").status == 200);
  std::string stats;
  for (int i = 0; i < 100 && stats != R"({"dead":1,"pending":0})"; ++i) {
    std::this_thread::sleep_for(50ms);
    stats = http_request(server.port(), "GET", "/stats").body;
  }
  CHECK(stats == R"({"dead":1,"pending":0})");
}

TEST_CASE("the queue is bounded", "[queue]") {
  TestServer server("app", kQueueService);
  for (int i = 0; i < 5; ++i)
    CHECK(http_request(server.port(), "POST", "/push/later" + std::to_string(i) + "?delay=60")
              .status == 200);
  auto refused = http_request(server.port(), "POST", "/push/one-too-many?delay=60");
  CHECK(refused.status == 503);
  CHECK(refused.body.find("queue work is full") != std::string::npos);
}

TEST_CASE("a job pushed before a restart runs after it", "[queue]") {
  auto data = depot::testing::make_temp_dir("depot-queue-");
  auto same_data = [&](depot::Options& options) { options.data_dir = data; };
  {
    TestServer before("app", kQueueService, same_data);
    CHECK(http_request(before.port(), "POST", "/push/survivor?delay=0.5").status == 200);
  }
  TestServer after("app", kQueueService, same_data);
  CHECK(wait_for_result(after.port(), "survivor") == R"({"attempt":1})");
  std::filesystem::remove_all(data);
}

TEST_CASE("a job whose handler loops or outlives its timeout ends in the dead letters", "[queue]") {
  // The handler never settles: a busy loop (stopped by limits.cpu_slice) or a wait past the
  // queue's timeout (stopped at its deadline). Each attempt ends with the lease running out.
  TestServer server("app", R"LUA(
local depot = require "depot"
local queue = require "queue"
local service = ...
local work = queue.open("stuck", { attempts = 2, backoff = 0.05, poll = 0.05, timeout = 0.3 })
work:handler(function(payload)
  if payload == "loop" then while true do end end
  depot.sleep(60)
end)
service:on_start(function() work:start() end)
service:post("/push/:kind", function(req) return { id = work:push(req.params.kind) } end)
service:get("/dead", function()
  local dead = {}
  for _, job in ipairs(work:dead()) do dead[#dead + 1] = { payload = job.payload, attempt = job.attempt, error = job.error } end
  return { stats = work:stats(), dead = dead }
end)
)LUA",
                    [](depot::Options& options) { options.limits.cpu_slice = 200ms; });
  CHECK(http_request(server.port(), "POST", "/push/loop").status == 200);
  CHECK(http_request(server.port(), "POST", "/push/wait").status == 200);
  nlohmann::json outcome;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(100ms);
    outcome = nlohmann::json::parse(http_request(server.port(), "GET", "/dead").body);
    if (outcome["stats"]["dead"] == 2) break;
  }
  CHECK(outcome["stats"] == nlohmann::json{{"dead", 2}, {"pending", 0}});
  for (auto& job : outcome["dead"]) {
    INFO(job.dump());
    CHECK(job["attempt"] == 2);
    // A stopped loop may still settle its failure before the stop reaches it again.
    if (job["payload"] == "wait") {
      CHECK(job["error"] == "its lease of 0.3 s ran out 2 times (the handler never settled it)");
    }
  }
}
