// The depot binary: config from flags and env, the listening line (only once the scripts are
// loaded), SIGTERM drain, SIGHUP reload, cleanup after kill -9, depot admin and its offline errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::DepotProcess;
using depot::testing::EagerClient;
using depot::testing::free_port;
using depot::testing::http_request;
using depot::testing::RawConnection;
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
  std::ofstream(directory / "depot.json")
      << R"({"services": [{"name": "app", "mount": "/"}], "threads": 1, "watch_scripts": false})";
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
    if (entry.value("msg", "") == "request" && entry.value("path", "") == "/slow")
      access_line = true;
  }
  CHECK(access_line);
  std::filesystem::remove_all(directory);
}

TEST_CASE("depot serve reads its port from the environment and .env, and reloads on SIGHUP",
          "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / ".env")
      << "# test settings\nDEPOT_HOST=127.0.0.1\nDEPOT_CONFIG=\"depot.json\"\n";
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

TEST_CASE("depot admin runs a service's command against the data dir, and fails for unknown ones",
          "[lifecycle]") {
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
  std::string unknown = "cd " + directory.string() + " && " + DEPOT_BINARY +
                        " admin --config depot.json nope 2>/dev/null";
  CHECK(WEXITSTATUS(system(unknown.c_str())) == 2);
  std::filesystem::remove_all(directory);
}

namespace {
struct Finished {
  int status = -1;  // the exit status, -1 when killed by a signal (a crash)
  std::string output;
};

// Runs a shell command; its stdout and stderr both end up in `output`.
Finished run(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  Finished finished;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe)) finished.output += buffer;
  int status = pclose(pipe);
  finished.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return finished;
}
}  // namespace

TEST_CASE("depot admin: what needs a server raises a clear error, also inside pcall",
          "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / "scripts" / "app" / "init.lua", std::ios::app) << R"LUA(
local jobs = require "jobs"
local http = require "http"
service:command("offline", function()
  local calls = {
    ["jobs.after"] = function() jobs.after(1, function() end) end,
    ["jobs.every"] = function() jobs.every(1, function() end) end,
    ["depot.sleep"] = function() depot.sleep(0.1) end,
    ["depot.wait"] = function() depot.wait("x", 1) end,
    ["depot.notify"] = function() depot.notify("x") end,
    ["http.get"] = function() http.get("http://127.0.0.1:1/") end,
  }
  for _, name in ipairs({ "jobs.after", "jobs.every", "depot.sleep", "depot.wait", "depot.notify", "http.get" }) do
    local ok, err = pcall(calls[name])
    print(name .. " " .. tostring(ok) .. " " .. tostring(err))
  end
end)
service:command("timer", function()
  jobs.after(0, function() end)
  print("not reached")
end)
)LUA";
  std::string admin =
      "cd " + directory.string() + " && " + DEPOT_BINARY + " admin --config depot.json ";
  Finished protected_calls = run(admin + "offline");
  CHECK(protected_calls.status == 0);
  std::istringstream lines(protected_calls.output);
  std::map<std::string, std::string> results;  // call → "false <its error message>"
  for (std::string line; std::getline(lines, line);) {
    size_t space = line.find(' ');
    if (space != std::string::npos) results[line.substr(0, space)] = line.substr(space + 1);
  }
  for (std::string name :
       {"jobs.after", "jobs.every", "depot.sleep", "depot.wait", "depot.notify", "http.get"}) {
    INFO(protected_calls.output);
    CHECK(results[name].rfind("false ", 0) == 0);
    CHECK(results[name].find(name + ": not available in depot admin (no server running)") !=
          std::string::npos);
  }
  Finished unprotected = run(admin + "timer");
  CHECK(unprotected.status == 1);  // an error, not a crash (-1)
  CHECK(unprotected.output.find("jobs.after: not available in depot admin (no server running)") !=
        std::string::npos);
  CHECK(unprotected.output.find("not reached") == std::string::npos);
  std::filesystem::remove_all(directory);
}

namespace {
// The messages of the JSON log lines in `log`, in order.
std::vector<std::string> log_messages(const std::filesystem::path& log) {
  std::ifstream lines(log);
  std::vector<std::string> messages;
  for (std::string line; std::getline(lines, line);) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (entry.is_object()) messages.push_back(entry.value("msg", ""));
  }
  return messages;
}
}  // namespace

TEST_CASE(
    "depot serve: a request sent the moment the port listens gets the route, listening is logged "
    "after loading",
    "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / "scripts" / "app" / "init.lua", std::ios::app) << R"LUA(
local started = os.clock()
while os.clock() - started < 0.4 do end  -- a slow load widens the window a request could hit
)LUA";
  uint16_t port = free_port();
  EagerClient client(port, "/hello");
  DepotProcess depot(
      directory, {"--config", "depot.json", "--port", std::to_string(port), "--host", "127.0.0.1"});
  CHECK(client.join() == 200);
  CHECK(depot.port == port);
  kill(depot.pid, SIGTERM);
  CHECK(depot.wait_exit() == 0);
  auto messages = log_messages(depot.log);
  auto loaded = std::find(messages.begin(), messages.end(), "scripts loaded");
  auto listening = std::find(messages.begin(), messages.end(), "listening");
  REQUIRE(loaded != messages.end());
  REQUIRE(listening != messages.end());
  CHECK(loaded < listening);
  std::filesystem::remove_all(directory);
}

TEST_CASE("depot serve removes at start the temporary file of an upload cut by kill -9",
          "[lifecycle]") {
  auto directory = prepare_directory();
  std::ofstream(directory / "scripts" / "app" / "init.lua", std::ios::app) << R"LUA(
local fs = require "fs"
service:post("/upload", function(req)
  local writer = assert(fs.writer("uploads/big"))
  assert(writer:write(string.rep("x", 3000000)))
  depot.sleep(60)  -- killed meanwhile
end)
)LUA";
  auto uploads = directory / "data" / "uploads";
  std::filesystem::create_directories(uploads);
  auto temporary_files = [&] {
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::directory_iterator(uploads)) {
      if (entry.path().filename().string().rfind(".big.tmp.", 0) == 0)
        found.push_back(entry.path());
    }
    return found;
  };
  {
    DepotProcess first(directory, {"--config", "depot.json", "--port", "0", "--host", "127.0.0.1"});
    REQUIRE(first.port != 0);
    RawConnection upload(first.port);
    upload.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    for (int i = 0; i < 100 && temporary_files().empty(); ++i) std::this_thread::sleep_for(50ms);
    REQUIRE(temporary_files().size() == 1);
    kill(first.pid, SIGKILL);
    CHECK(first.wait_exit() == -1);
  }
  REQUIRE(temporary_files().size() == 1);  // what the dead process left

  DepotProcess second(directory, {"--config", "depot.json", "--port", "0", "--host", "127.0.0.1"});
  REQUIRE(second.port != 0);
  CHECK(temporary_files().empty());
  std::ifstream lines(second.log);
  bool reported = false;
  for (std::string line; std::getline(lines, line);) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (entry.is_object() && entry.value("msg", "") == "abandoned temporary files removed") {
      reported = entry["files"] == 1 && entry["bytes"].get<uint64_t>() <= 3000000;
    }
  }
  CHECK(reported);
  kill(second.pid, SIGTERM);
  CHECK(second.wait_exit() == 0);
  std::filesystem::remove_all(directory);
}
