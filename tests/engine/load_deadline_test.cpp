// A service script whose top level never ends (an endless loop at load, also one that swallows the
// deadline's error with pcall) is cut at limits.load_deadline: a reload is refused with the reason
// logged and the previous generation keeps serving on every worker; `depot check` names the script.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/log.hpp"
#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {

const char* const kServing =
    "local service = ...\nservice:get('/version', function() return 'one' end)\n";

std::mutex captured_mutex;
std::vector<std::string> captured;

void capture(const std::string& line) {
  std::lock_guard<std::mutex> lock(captured_mutex);
  captured.push_back(line);
}

// The log lines with this message, while it lives.
class LogCapture {
 public:
  LogCapture() { depot::log::set_sink(capture); }
  ~LogCapture() {
    depot::log::set_sink(nullptr);
    std::lock_guard<std::mutex> lock(captured_mutex);
    captured.clear();
  }
  std::vector<nlohmann::json> lines(const std::string& message) {
    std::lock_guard<std::mutex> lock(captured_mutex);
    std::vector<nlohmann::json> found;
    for (const std::string& line : captured) {
      auto parsed = nlohmann::json::parse(line, nullptr, false);
      if (parsed.is_object() && parsed.value("msg", "") == message) found.push_back(parsed);
    }
    return found;
  }
};

}  // namespace

TEST_CASE("a reload whose script loops forever at load is refused at limits.load_deadline",
          "[reload][preemption]") {
  TestServer server("app", kServing, [](depot::Options& options) {
    options.threads = 2;
    options.limits.load_deadline = 300ms;
  });
  LogCapture log;
  auto loop = GENERATE(
      as<std::string>{}, "while true do end",
      // The deadline's error caught and the loop resumed: it must end anyway.
      "while true do pcall(function() while true do end end) end",
      "local n = 0 while true do n = n + 1; if n % 1000 == 0 then pcall(error, 'x') end end");
  INFO(loop);
  server.write_script(
      "app", "local service = ...\nservice:get('/version', function() return 'two' end)\n" + loop);
  auto started = std::chrono::steady_clock::now();
  std::string error = server.server().reload();
  auto took = std::chrono::steady_clock::now() - started;
  CHECK_THAT(error, Catch::Contains("service app") && Catch::Contains("limits.load_deadline") &&
                        Catch::Contains("init.lua:3:"));
  CHECK(took < 5s);  // 300 ms on each worker, loaded side by side; far below it on an idle machine
  for (int i = 0; i < 4; ++i) CHECK(http_request(server.port(), "GET", "/version").body == "one");
  auto refused = log.lines("scripts refused; the previous generation keeps serving");
  REQUIRE(refused.size() == 1);
  CHECK(refused[0]["level"] == "error");
  CHECK_THAT(refused[0]["error"].get<std::string>(), Catch::Contains("limits.load_deadline"));

  server.write_script(
      "app", "local service = ...\nservice:get('/version', function() return 'three' end)\n");
  CHECK(server.server().reload().empty());
  CHECK(http_request(server.port(), "GET", "/version").body == "three");
}

TEST_CASE("a script that takes a while at load, within limits.load_deadline, loads",
          "[reload][preemption]") {
  TestServer server("app", kServing,
                    [](depot::Options& options) { options.limits.load_deadline = 10s; });
  server.write_script("app", R"LUA(
local service = ...
local started = os.clock()
while os.clock() - started < 0.2 do end
service:get('/version', function() return 'two' end)
)LUA");
  CHECK(server.server().reload().empty());
  CHECK(http_request(server.port(), "GET", "/version").body == "two");
}

TEST_CASE("depot check reports a script that loops forever at load", "[check][preemption]") {
  auto root = depot::testing::make_temp_dir("depot-load-deadline-");
  std::filesystem::create_directories(root / "scripts" / "looping");
  std::ofstream(root / "scripts" / "looping" / "init.lua")
      << "local service = ...\nwhile true do end\n";
  std::ofstream(root / "config.json")
      << R"({"limits": {"load_deadline": 0.2}, "services": [{"name": "looping"}]})";
  auto outcome = depot::testing::run_depot(root, {"check", "--config", "config.json"});
  std::filesystem::remove_all(root);
  INFO(outcome.out);
  CHECK(outcome.status == 1);
  CHECK_THAT(outcome.out, Catch::Contains("error: service looping: ") &&
                              Catch::Contains("limits.load_deadline") &&
                              Catch::Contains("scripts/looping/init.lua:2:"));
}
