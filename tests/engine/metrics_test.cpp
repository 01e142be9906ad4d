// /metrics: counts that move with real requests, the text format as promtool reads it, where the
// endpoint is served (main listener, admin listener, off, a service's own route), and a real
// Prometheus scraping a Depot.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/scrape.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::promtool_check;
using depot::testing::RawConnection;
using depot::testing::sample;
using depot::testing::scrape;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kApp = R"LUA(
local depot = require "depot"
local http = require "http"
local service = ...
service:get("/items/:id", function(req) return { id = req.params.id } end)
service:get("/broken", function() error("boom") end)
service:get("/slow", function() depot.sleep(0.5); return "slow" end)
service:get("/call", function(req)
  local res = assert(http.request("GET", "http://127.0.0.1:" .. req.query.port .. "/items/" .. req.query.id))
  return tostring(res.status)
end)
)LUA";

const std::string kItems2xx =
    R"(depot_http_requests_total{service="app",route="GET /items/:id",code="2xx"})";

// Polls until `done(scrape)` holds (the Lua memory gauge is refreshed once a second).
template <typename Done>
std::string scrape_until(uint16_t port, Done done) {
  std::string text;
  for (int i = 0; i < 60; ++i) {
    text = scrape(port);
    if (done(text)) break;
    std::this_thread::sleep_for(50ms);
  }
  return text;
}
}  // namespace

TEST_CASE("metrics count requests by service, route pattern and status class", "[metrics]") {
  TestServer server("app", kApp);
  double before = std::max(0.0, sample(scrape(server.port()), kItems2xx));
  for (const char* id : {"1", "2", "3"})
    CHECK(http_request(server.port(), "GET", std::string("/items/") + id).status == 200);
  CHECK(http_request(server.port(), "GET", "/broken").status == 500);
  CHECK(http_request(server.port(), "GET", "/nowhere").status == 404);
  std::string text = scrape(server.port());

  CHECK(sample(text, kItems2xx) == before + 3);
  CHECK(text.find("/items/1") == std::string::npos);  // the pattern, never the path
  CHECK(sample(text,
               R"(depot_http_requests_total{service="app",route="GET /broken",code="5xx"})") == 1);
  CHECK(sample(text, R"(depot_http_requests_total{service="app",route="unmatched",code="4xx"})") ==
        1);
  CHECK(sample(
            text,
            R"(depot_http_request_duration_seconds_count{service="app",route="GET /items/:id"})") ==
        before + 3);
  CHECK(
      sample(
          text,
          R"(depot_http_request_duration_seconds_bucket{service="app",route="GET /items/:id",le="+Inf"})") ==
      before + 3);
  CHECK(sample(text,
               R"(depot_http_request_duration_seconds_sum{service="app",route="GET /items/:id"})") >
        0);
  // The scrapes before this one were answered and counted too.
  CHECK(sample(text,
               R"(depot_http_requests_total{service="depot",route="GET /metrics",code="2xx"})") >=
        1);
  CHECK(sample(text, "depot_http_received_bytes_total") > 0);
  CHECK(sample(text, "depot_http_sent_bytes_total") > 0);
  CHECK(sample(text, "depot_http_connections_open") >= 1);  // this scrape's own
  CHECK(sample(text, R"(depot_reloads_total{result="loaded"})") == 1);
  CHECK(sample(text, "depot_generation") == 1);

  // A malformed head never reaches the router: it counts under service "none".
  RawConnection bad(server.port());
  bad.send("NOT A REQUEST\r\n\r\n");
  CHECK(bad.read_response()->status == 400);
  CHECK(sample(scrape(server.port()),
               R"(depot_http_requests_total{service="none",route="none",code="4xx"})") == 1);
}

TEST_CASE("metrics show requests in flight, Lua memory per worker and upstream calls",
          "[metrics]") {
  TestServer server("app", kApp, [](depot::Options& options) { options.threads = 2; });
  RawConnection slow(server.port());
  slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string text = scrape_until(server.port(), [](const std::string& t) {
    return sample(t, "depot_http_requests_in_flight") >= 2;  // the slow one and the scrape
  });
  CHECK(sample(text, "depot_http_requests_in_flight") >= 2);
  CHECK(slow.read_response()->body == "slow");
  text = scrape_until(server.port(), [](const std::string& t) {
    return sample(t, "depot_http_requests_in_flight") == 1 &&
           sample(t, R"(depot_lua_memory_bytes{worker="1"})") > 0;
  });
  CHECK(sample(text, "depot_http_requests_in_flight") == 1);
  CHECK(sample(text, R"(depot_lua_memory_bytes{worker="0"})") > 10000);
  CHECK(sample(text, R"(depot_lua_memory_bytes{worker="1"})") > 10000);

  std::string port = std::to_string(server.port());
  CHECK(http_request(server.port(), "GET", "/call?port=" + port + "&id=7").body == "200");
  CHECK(http_request(server.port(), "GET", "/call?port=" + port + "&id=8").body == "200");
  text = scrape(server.port());
  CHECK(sample(text, R"(depot_upstream_requests_total{host="127.0.0.1:)" + port +
                         R"(",outcome="2xx"})") == 2);
}

TEST_CASE("metrics count reloads, loaded and refused", "[metrics][reload]") {
  TestServer server("app", kApp);
  CHECK(server.server().reload().empty());
  server.write_script("app", "local service = ...\nerror('refusing')");
  CHECK_FALSE(server.server().reload().empty());
  std::string text = scrape(server.port());
  CHECK(sample(text, R"(depot_reloads_total{result="loaded"})") == 2);
  CHECK(sample(text, R"(depot_reloads_total{result="refused"})") == 1);
  CHECK(sample(text, "depot_generation") == 2);
}

TEST_CASE("metrics show the kv map and each queue's pending and dead jobs", "[metrics]") {
  TestServer server("app", R"LUA(
local queue = require "queue"
local service = ...
local mail = queue.open("mail", { attempts = 1 })
service:post("/push", function() return { id = mail:push({ to = "a@b" }) } end)
)LUA");
  CHECK(sample(scrape(server.port()), R"(depot_queue_pending_jobs{queue="mail"})") == 0);
  CHECK(http_request(server.port(), "POST", "/push").status == 200);
  CHECK(http_request(server.port(), "POST", "/push").status == 200);
  std::string text = scrape(server.port());
  CHECK(sample(text, R"(depot_queue_pending_jobs{queue="mail"})") == 2);
  CHECK(sample(text, R"(depot_queue_dead_jobs{queue="mail"})") == 0);
  CHECK(sample(text, "depot_kv_map_size_bytes") >= 1 << 20);
  CHECK(sample(text, "depot_kv_used_pages") >= 2);
  CHECK(sample(text, "depot_kv_page_size_bytes") >= 4096);
}

TEST_CASE("promtool accepts the scraped text", "[metrics][promtool]") {
  TestServer server("app", kApp + std::string(R"LUA(
local metrics = require "metrics"
local seen = metrics.counter("app_seen_total", "Things seen, with \\ and\na newline", { "kind" })
local size = metrics.gauge("app_queue_size", "A gauge")
local took = metrics.histogram("app_took_seconds", "A histogram", { "step" }, { 0.1, 1 })
service:get("/seen", function()
  seen:inc(1, { 'quote " backslash \\ newline \n' })
  size:set(3)
  took:observe(0.5, { "one" })
  return "ok"
end)
)LUA"));
  CHECK(http_request(server.port(), "GET", "/items/1").status == 200);
  CHECK(http_request(server.port(), "GET", "/seen").status == 200);
  CHECK(http_request(server.port(), "GET", "/nowhere").status == 404);
  std::string text = scrape(server.port());
  if (depot::testing::find_program("promtool").empty()) {
    WARN(
        "promtool not installed (Debian package prometheus, see setup.sh): the format check is "
        "skipped");
    return;
  }
  INFO(text);
  CHECK(promtool_check(text) == "");
}

TEST_CASE("metrics can be turned off or moved to an admin listener", "[metrics]") {
  SECTION("off") {
    TestServer server("app", kApp,
                      [](depot::Options& options) { options.metrics.enabled = false; });
    CHECK(http_request(server.port(), "GET", "/metrics").status == 404);
    CHECK(server.server().metrics_port() == 0);
  }
  SECTION("on an admin listener, and then not on the main one") {
    TestServer server("app", kApp,
                      [](depot::Options& options) { options.metrics.listen = "127.0.0.1:0"; });
    uint16_t admin = server.server().metrics_port();
    REQUIRE(admin != 0);
    CHECK(http_request(server.port(), "GET", "/metrics").status == 404);
    CHECK(http_request(server.port(), "GET", "/items/1").status == 200);
    auto answer = http_request(admin, "GET", "/metrics");
    CHECK(answer.status == 200);
    CHECK(answer.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(sample(answer.body, kItems2xx) == 1);
    CHECK(http_request(admin, "GET", "/items/1").status == 404);
    CHECK(http_request(admin, "POST", "/metrics").status == 405);
  }
  SECTION("an admin address without a port stops the start") {
    CHECK_THROWS_WITH(
        TestServer("app", kApp,
                   [](depot::Options& options) { options.metrics.listen = "127.0.0.1"; }),
        Catch::Contains("metrics.listen must be host:port"));
  }
}

TEST_CASE("a service's own /metrics route wins over the engine's", "[metrics]") {
  const char* const kOwn = R"LUA(
local service = ...
service:get("/metrics", function() return "the service's own" end)
)LUA";
  SECTION("on the main listener the service answers") {
    TestServer server("app", kOwn);
    CHECK(http_request(server.port(), "GET", "/metrics").body == "the service's own");
  }
  SECTION("with an admin listener both are reachable") {
    TestServer server("app", kOwn,
                      [](depot::Options& options) { options.metrics.listen = "127.0.0.1:0"; });
    CHECK(http_request(server.port(), "GET", "/metrics").body == "the service's own");
    CHECK(sample(scrape(server.server().metrics_port()),
                 R"(depot_http_requests_total{service="app",route="GET /metrics",code="2xx"})") ==
          1);
  }
  SECTION("a service mounted elsewhere leaves /metrics to the engine") {
    TestServer server({TestServer::Service{"app", kOwn, {"/app"}}});
    CHECK(http_request(server.port(), "GET", "/app/metrics").body == "the service's own");
    CHECK(sample(scrape(server.port()),
                 R"(depot_http_requests_total{service="app",route="GET /metrics",code="2xx"})") ==
          1);
  }
}

TEST_CASE("a real Prometheus scrapes Depot", "[metrics][prometheus]") {
  std::string prometheus = depot::testing::find_program("prometheus");
  if (prometheus.empty()) {
    WARN(
        "prometheus not installed (Debian package prometheus, see setup.sh): the scrape test is "
        "skipped");
    return;
  }
  TestServer server("app", kApp);
  CHECK(http_request(server.port(), "GET", "/items/1").status == 200);
  std::filesystem::path directory = server.data_dir() / "prometheus";
  std::filesystem::create_directories(directory);
  std::ofstream(directory / "prometheus.yml")
      << "global:\n  scrape_interval: 1s\n"
      << "scrape_configs:\n  - job_name: depot\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << server.port() << "']\n";
  uint16_t web = depot::testing::free_port();
  depot::testing::ChildProcess process(
      {prometheus, "--config.file=" + (directory / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (directory / "data").string(),
       "--web.listen-address=127.0.0.1:" + std::to_string(web)},
      directory / "prometheus.log");

  // A query's answer: {"status":"success","data":{"result":[{"metric":{...},"value":[t,"1"]}]}}.
  auto query = [&](const std::string& expression) -> std::string {
    try {
      auto answer = http_request(web, "GET", "/api/v1/query?query=" + expression);
      auto body = nlohmann::json::parse(answer.body, nullptr, false);
      if (!body.is_object() || body["data"]["result"].empty()) return "";
      return body["data"]["result"][0]["value"][1].get<std::string>();
    } catch (const std::exception&) {
      return "";  // not listening yet
    }
  };
  std::string up;
  for (int i = 0; i < 150 && up != "1"; ++i) {
    std::this_thread::sleep_for(100ms);
    up = query("up");
  }
  INFO(process.output());
  CHECK(up == "1");
  CHECK(query("depot_http_requests_total%7Broute%3D%22GET%20%2Fitems%2F%3Aid%22%7D") == "1");
}
