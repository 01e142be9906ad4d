// jobs.after / jobs.every: timers run as tasks, can be cancelled, and fire once with
// premature = true when a reload replaces their scripts.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kTimers = R"LUA(
local depot = require "depot"
local jobs = require "jobs"
local service = ...
local ticks, fired, cancelled_ran, premature_seen = 0, {}, false, false
local ticker
service:on_start(function()
  jobs.after(0.05, function(premature, a, b)
    depot.sleep(0.01)  -- timers are tasks: they may wait
    fired[#fired + 1] = a .. b
  end, "x", "y")
  ticker = jobs.every(0.05, function(premature) if not premature then ticks = ticks + 1 end end)
  local doomed = jobs.after(0.05, function() cancelled_ran = true end)
  doomed:cancel()
  jobs.after(3600, function(premature)
    -- runs at once when the scripts are replaced: record it where the next generation can see
    if premature then io.open(service.config.marker, "w"):close() end
  end)
end)
service:get("/state", function()
  return { fired = fired[1] or "", ticks = ticks, cancelled_ran = cancelled_ran }
end)
service:post("/stop", function() ticker:cancel(); return { ticks = ticks } end)
)LUA";
}  // namespace

TEST_CASE("after and every run as tasks, cancel stops them", "[jobs]") {
  auto marker =
      std::filesystem::temp_directory_path() / ("depot-premature-" + std::to_string(getpid()));
  std::filesystem::remove(marker);
  TestServer server(
      std::vector<TestServer::Service>{{"timers", kTimers, {"/"}, {{"marker", marker.string()}}}});
  std::this_thread::sleep_for(400ms);
  auto state = nlohmann::json::parse(http_request(server.port(), "GET", "/state").body);
  CHECK(state["fired"] == "xy");
  CHECK(state["ticks"].get<int>() >= 3);
  CHECK(state["cancelled_ran"] == false);
  int at_stop =
      nlohmann::json::parse(http_request(server.port(), "POST", "/stop").body)["ticks"].get<int>();
  std::this_thread::sleep_for(200ms);
  CHECK(nlohmann::json::parse(http_request(server.port(), "GET", "/state").body)["ticks"]
            .get<int>() == at_stop);

  CHECK_FALSE(std::filesystem::exists(marker));
  CHECK(server.server().reload().empty());
  for (int i = 0; i < 50 && !std::filesystem::exists(marker); ++i)
    std::this_thread::sleep_for(20ms);
  CHECK(std::filesystem::exists(marker));  // the hour-long timer fired prematurely on reload
  std::filesystem::remove(marker);
}
