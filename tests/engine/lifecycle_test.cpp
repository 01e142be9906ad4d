// The depot binary: config from flags and env, the listening line, SIGTERM drain, SIGHUP reload.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::DepotProcess;
using depot::testing::http_request;
using namespace std::chrono_literals;

namespace {
std::filesystem::path prepare_directory() {
  auto directory = depot::testing::make_temp_dir("depot-cli-");
  std::filesystem::create_directories(directory / "scripts" / "app");
  std::ofstream(directory / "scripts" / "app" / "init.lua") << R"LUA(
local depot = require "depot"
local service = ...
service:get("/hello", function() return "hello\n" end)
service:get("/slow", function() depot.sleep(1); return "finished\n" end)
)LUA";
  std::ofstream(directory / "depot.json") << R"({"services": [{"name": "app", "mount": "/"}], "threads": 1, "watch_scripts": false})";
  return directory;
}
}  // namespace

TEST_CASE("depot serve logs the bound port, drains on SIGTERM and exits 0", "[lifecycle]") {
  auto directory = prepare_directory();
  DepotProcess depot(directory, {"--config", "depot.json", "--port", "0", "--host", "127.0.0.1"});
  REQUIRE(depot.port != 0);
  CHECK(http_request(depot.port, "GET", "/hello").body == "hello\n");
  std::string slow_body;
  std::thread slow([&] { slow_body = http_request(depot.port, "GET", "/slow").body; });
  std::this_thread::sleep_for(300ms);
  kill(depot.pid, SIGTERM);
  slow.join();
  CHECK(slow_body == "finished\n");
  CHECK(depot.wait_exit() == 0);

  std::ifstream lines(depot.log);
  std::string line;
  bool access_line = false;
  while (std::getline(lines, line)) {
    auto entry = nlohmann::json::parse(line);  // every line is one JSON object
    CHECK(entry.contains("level"));
    if (entry.value("msg", "") == "request" && entry.value("path", "") == "/slow") access_line = true;
  }
  CHECK(access_line);
  std::filesystem::remove_all(directory);
}

TEST_CASE("depot serve reads its port from the environment and .env, and reloads on SIGHUP", "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / ".env") << "# test settings\nDEPOT_HOST=127.0.0.1\nDEPOT_CONFIG=\"depot.json\"\n";
  setenv("DEPOT_PORT", "0", 1);
  DepotProcess depot(directory, {});
  unsetenv("DEPOT_PORT");
  REQUIRE(depot.port != 0);
  std::ofstream(directory / "scripts" / "app" / "init.lua") << R"LUA(
local service = ...
service:get("/hello", function() return "reloaded\n" end)
)LUA";
  kill(depot.pid, SIGHUP);
  std::string body;
  for (int i = 0; i < 40 && body != "reloaded\n"; ++i) {
    std::this_thread::sleep_for(50ms);
    body = http_request(depot.port, "GET", "/hello").body;
  }
  CHECK(body == "reloaded\n");
  kill(depot.pid, SIGINT);
  CHECK(depot.wait_exit() == 0);
  std::filesystem::remove_all(directory);
}

TEST_CASE("depot admin runs a service's command against the data dir, and fails for unknown ones", "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / "scripts" / "app" / "init.lua", std::ios::app) << R"LUA(
service:command("count-args", function(arguments)
  local kv = require "kv"
  kv.open("admin"):put("last", table.concat(arguments, "+"))
  print("Total arguments: " .. #arguments)
end)
)LUA";
  std::string command = "cd " + directory.string() + " && " + DEPOT_BINARY +
                        " admin --config depot.json count-args a b 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[256] = "";
  std::string output;
  while (fgets(buffer, sizeof buffer, pipe)) output += buffer;
  CHECK(pclose(pipe) == 0);
  CHECK(output == "Total arguments: 2\n");
  std::string unknown = "cd " + directory.string() + " && " + DEPOT_BINARY + " admin --config depot.json nope 2>/dev/null";
  CHECK(WEXITSTATUS(system(unknown.c_str())) == 2);
  std::filesystem::remove_all(directory);
}
