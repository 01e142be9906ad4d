// The `metrics` module: a script's counters, gauges and histograms served at /metrics, added up
// over workers, surviving a hot reload, and refusing bad names, labels and values.
#include <catch2/catch.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/scrape.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::sample;
using depot::testing::scrape;
using depot::testing::TestServer;

namespace {
const char* const kCounting = R"LUA(
local metrics = require "metrics"
local service = ...
local hits = metrics.counter("app_hits_total", "Hits by kind", { "kind" })
local plain = metrics.counter("app_plain_total", "Without labels")
local level = metrics.gauge("app_level", "A level", { "tank" })
local took = metrics.histogram("app_took_seconds", "Durations", nil, { 0.1, 1 })
service:get("/hit/:kind", function(req)
  hits:inc(1, { req.params.kind })
  plain:inc(0.5)
  return "ok"
end)
service:get("/level/:value", function(req)
  level:set(tonumber(req.params.value), { "a" })
  level:inc(1, { "a" })
  level:dec(0.5, { "a" })
  return "ok"
end)
service:get("/took/:seconds", function(req) took:observe(tonumber(req.params.seconds)); return "ok" end)
service:get("/try", function(req)
  local ok, err = pcall(function()
    if req.query.case == "labels" then hits:inc(1) end
    if req.query.case == "negative" then hits:inc(-1, { "x" }) end
    if req.query.case == "set" then hits:set(1, { "x" }) end
    if req.query.case == "nan" then took:observe(0 / 0) end
    if req.query.case == "name" then metrics.counter("bad-name", "x") end
    if req.query.case == "reserved" then metrics.counter("depot_mine_total", "x") end
    if req.query.case == "label" then metrics.gauge("app_other", "x", { "__reserved" }) end
    if req.query.case == "le" then metrics.histogram("app_h", "x", { "le" }) end
    if req.query.case == "buckets" then metrics.histogram("app_h", "x", nil, { 2, 1 }) end
    if req.query.case == "type" then metrics.gauge("app_hits_total", "x", { "kind" }) end
  end)
  return ok and "no error" or tostring(err)
end)
)LUA";

std::string error_of(uint16_t port, const std::string& which) {
  return http_request(port, "GET", "/try?case=" + which).body;
}
}  // namespace

TEST_CASE("script counters, gauges and histograms appear at /metrics, added up over workers",
          "[metrics][lua]") {
  TestServer server("app", kCounting, [](depot::Options& options) { options.threads = 2; });
  std::string text = scrape(server.port());
  CHECK(text.find("# TYPE app_hits_total counter") != std::string::npos);
  CHECK(sample(text, "app_plain_total") == 0);  // an unlabeled metric reads 0 before its first use
  for (int i = 0; i < 6; ++i)
    CHECK(http_request(server.port(), "GET", "/hit/red").status == 200);  // both workers
  CHECK(http_request(server.port(), "GET", "/hit/blue").status == 200);
  CHECK(http_request(server.port(), "GET", "/level/10").status == 200);
  CHECK(http_request(server.port(), "GET", "/took/0.05").status == 200);
  CHECK(http_request(server.port(), "GET", "/took/0.5").status == 200);
  CHECK(http_request(server.port(), "GET", "/took/5").status == 200);
  text = scrape(server.port());
  CHECK(sample(text, R"(app_hits_total{kind="red"})") == 6);
  CHECK(sample(text, R"(app_hits_total{kind="blue"})") == 1);
  CHECK(sample(text, "app_plain_total") == 3.5);
  CHECK(sample(text, R"(app_level{tank="a"})") == 10.5);
  CHECK(sample(text, R"(app_took_seconds_bucket{le="0.1"})") == 1);
  CHECK(sample(text, R"(app_took_seconds_bucket{le="1"})") == 2);
  CHECK(sample(text, R"(app_took_seconds_bucket{le="+Inf"})") == 3);
  CHECK(sample(text, "app_took_seconds_count") == 3);
  CHECK(sample(text, "app_took_seconds_sum") == Approx(5.55));
}

TEST_CASE("script metrics keep counting across a hot reload, a changed definition is refused",
          "[metrics][lua][reload]") {
  TestServer server("app", kCounting);
  CHECK(http_request(server.port(), "GET", "/hit/red").status == 200);
  CHECK(server.server().reload().empty());  // registers the same families again
  CHECK(http_request(server.port(), "GET", "/hit/red").status == 200);
  CHECK(sample(scrape(server.port()), R"(app_hits_total{kind="red"})") == 2);

  server.write_script("app", R"LUA(
local metrics = require "metrics"
metrics.counter("app_hits_total", "Hits by kind and colour", { "kind", "colour" })
)LUA");
  std::string error = server.server().reload();
  CHECK_THAT(error, Catch::Contains(
                        "app_hits_total is registered already as a counter with labels {kind}"));
  CHECK(sample(scrape(server.port()), R"(app_hits_total{kind="red"})") ==
        2);  // the old generation serves on
}

TEST_CASE("the metrics module refuses bad names, labels and values with clear errors",
          "[metrics][lua]") {
  TestServer server("app", kCounting);
  uint16_t port = server.port();
  CHECK_THAT(error_of(port, "labels"),
             Catch::Contains("app_hits_total:inc: expects 1 label values (kind), got 0"));
  CHECK_THAT(error_of(port, "negative"), Catch::Contains("a counter only goes up"));
  CHECK_THAT(error_of(port, "set"),
             Catch::Contains("app_hits_total:set: app_hits_total is a counter"));
  CHECK_THAT(error_of(port, "nan"),
             Catch::Contains("app_took_seconds:observe: value must be a finite number"));
  CHECK_THAT(error_of(port, "name"),
             Catch::Contains("metrics.counter: name 'bad-name' is not a Prometheus metric name"));
  CHECK_THAT(error_of(port, "reserved"),
             Catch::Contains("names starting with depot_ are Depot's own"));
  CHECK_THAT(error_of(port, "label"),
             Catch::Contains("label '__reserved' is not a Prometheus label name"));
  CHECK_THAT(error_of(port, "le"), Catch::Contains("a histogram cannot have a label 'le'"));
  CHECK_THAT(error_of(port, "buckets"),
             Catch::Contains("buckets must be finite numbers in increasing order"));
  CHECK_THAT(error_of(port, "type"), Catch::Contains("registered already as a counter"));
  // None of the refused registrations left a family behind.
  std::string text = scrape(port);
  CHECK(text.find("bad-name") == std::string::npos);
  CHECK(text.find("app_other") == std::string::npos);
  CHECK(text.find("app_h ") == std::string::npos);
}

TEST_CASE("a script metric's label sets are bounded", "[metrics][lua]") {
  TestServer server("app", R"LUA(
local metrics = require "metrics"
local service = ...
local per_user = metrics.counter("app_per_user_total", "Labelled by something unbounded", { "user" })
service:get("/flood", function()
  for i = 1, 1000 do per_user:inc(1, { tostring(i) }) end
  local ok, err = pcall(per_user.inc, per_user, 1, { "one too many" })
  return ok and "no error" or err
end)
)LUA");
  CHECK_THAT(http_request(server.port(), "GET", "/flood").body,
             Catch::Contains("has 1000 label sets already"));
  CHECK(sample(scrape(server.port()), R"(app_per_user_total{user="1000"})") == 1);
}
