// What an operator sees of the `depot` binary: `depot version`, the log format (text at a
// terminal, JSON lines otherwise, --log-format to choose), and an admin command's progress
// (redrawn in place on a terminal, plain lines otherwise).
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::run_depot;
using nlohmann::json;

namespace {

// A directory with one service, `counter`, whose admin command `count N` reports N steps.
struct Workspace {
  std::filesystem::path root = depot::testing::make_temp_dir("depot-operator-");
  Workspace() {
    std::filesystem::create_directories(root / "scripts" / "counter");
    std::ofstream(root / "scripts" / "counter" / "init.lua") << R"LUA(
local service = ...
local depot = require "depot"
service:get("/count", function() return "ok" end)
service:command("count", function(arguments)
  local total = tonumber(arguments[1])
  for done = 1, total do depot.progress("counting: steps", done, total) end
  print("counted " .. total)
end)
)LUA";
    std::ofstream(root / "config.json") << json({{"services", {{{"name", "counter"}}}}}).dump();
  }
  ~Workspace() { std::filesystem::remove_all(root); }
  depot::testing::CommandOutcome count(int steps, bool terminal) {
    return run_depot(root, {"admin", "--config", "config.json", "count", std::to_string(steps)},
                     terminal);
  }
};

}  // namespace

TEST_CASE("depot version names Depot's version and its libraries", "[operator]") {
  auto outcome = run_depot(DEPOT_SOURCE_DIR, {"version"});
  CHECK(outcome.status == 0);
  CHECK_THAT(outcome.out,
             Catch::Matches("depot \\d+\\.\\d+\\.\\d+\n  LuaJIT 2\\.1\\S*, LMDB 0\\.9\\.\\d+: .*, "
                            "libsodium \\S+, libcurl \\S+, nlohmann_json 3\\.\\d+\\.\\d+\n"));
}

TEST_CASE("admin progress: plain lines per tenth of the work when stderr is no terminal",
          "[operator]") {
  Workspace workspace;
  auto outcome = workspace.count(50, false);
  CHECK(outcome.status == 0);
  CHECK(outcome.out == "counted 50\n");
  std::string expected = "counting: steps: 1/50 (2%)\n";
  for (int done = 5; done <= 50; done += 5) {
    expected +=
        "counting: steps: " + std::to_string(done) + "/50 (" + std::to_string(done * 2) + "%)\n";
  }
  CHECK(outcome.err == expected);
}

TEST_CASE("admin progress: one line redrawn in place on a terminal", "[operator]") {
  Workspace workspace;
  auto outcome = workspace.count(20000, true);
  CHECK(outcome.status == 0);
  // The terminal's line discipline turns "\n" into "\r\n".
  CHECK_THAT(outcome.err, Catch::StartsWith("\r\033[Kcounting: steps: 1/20000 (0%)\r\033[K"));
  CHECK_THAT(outcome.err, Catch::EndsWith("\r\033[Kcounting: steps: 20000/20000 (100%)\r\n"));
  // Redrawn at most ten times a second, not once per step.
  size_t redraws = 0;
  for (size_t at = 0; (at = outcome.err.find("\033[K", at)) != std::string::npos; ++at) ++redraws;
  CHECK(redraws >= 2);
  CHECK(redraws < 200);
}

TEST_CASE("log format: text at a terminal, JSON lines otherwise, --log-format decides",
          "[operator]") {
  Workspace workspace;
  // `depot admin` logs that the command's service loaded nothing wrong: make it log something.
  std::ofstream(workspace.root / "bad.json")
      << json({{"services", {{{"name", "counter"}, {"script", "missing"}}}}}).dump();
  auto terminal = run_depot(workspace.root, {"admin", "--config", "bad.json", "count", "1"}, true);
  CHECK(terminal.status == 1);
  CHECK_THAT(
      terminal.err,
      Catch::Matches(
          "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z ERROR fatal "
          "error=\"service counter: cannot open .*missing: No such file or directory\"\r\n"));
  auto piped = run_depot(workspace.root, {"admin", "--config", "bad.json", "count", "1"}, false);
  CHECK(piped.status == 1);
  json line = json::parse(piped.err);
  CHECK(line["level"] == "error");
  CHECK(line["msg"] == "fatal");
  auto chosen = run_depot(workspace.root,
                          {"admin", "--config", "bad.json", "--log-format", "text", "count", "1"});
  CHECK_THAT(chosen.err, Catch::Contains(" ERROR fatal error=\"service counter: cannot open "));
  auto refused = run_depot(workspace.root,
                           {"admin", "--config", "bad.json", "--log-format", "yaml", "count", "1"});
  CHECK(refused.status == 2);
  CHECK_THAT(refused.err, Catch::Contains("unknown log format 'yaml' (json, text, auto)"));
}

TEST_CASE("log format: a served request's access line in text", "[operator]") {
  Workspace workspace;
  depot::testing::DepotProcess server(
      workspace.root, {"--config", "config.json", "--port", "0", "--log-format", "text"});
  // DepotProcess finds the port in a JSON "listening" line; in text it reads none, so find it here.
  std::string log_text;
  uint16_t port = 0;
  for (int i = 0; i < 100 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream log(server.log);
    log_text.assign(std::istreambuf_iterator<char>(log), {});
    auto at = log_text.find(" INFO  listening ");
    auto port_at = log_text.find(" port=", at);
    if (at != std::string::npos && port_at != std::string::npos)
      port = static_cast<uint16_t>(std::stoi(log_text.substr(port_at + 6)));
  }
  REQUIRE(port != 0);
  CHECK(depot::testing::http_request(port, "GET", "/count").body == "ok");
  kill(server.pid, SIGTERM);
  CHECK(server.wait_exit() == 0);
  std::ifstream log(server.log);
  log_text.assign(std::istreambuf_iterator<char>(log), {});
  CHECK_THAT(log_text,
             Catch::Matches(
                 "[\\s\\S]*\\S+Z INFO  request request_id=\\S+ method=GET path=/count status=200 "
                 "bytes=\\d+ ms=[0-9.]+ remote=127\\.0\\.0\\.1[\\s\\S]*"));
}
