// Runaway Lua is stopped and the worker serves again: endless loops (also under pcall and in a
// coroutine) cut at limits.cpu_slice or the request deadline by a hook that only a task that
// overran gets (other code runs without one), memory hogs at limits.lua_memory,
// deadlines that count waits without progress (not a body still arriving), route deadlines, and
// a `depot serve` that exits on SIGTERM whatever its workers are doing.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "engine/config.hpp"
#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::DepotProcess;
using depot::testing::http_request;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kRoutes = R"LUA(
local depot = require "depot"
local service = ...
service:get("/hello", function() return "hello" end)
service:get("/spin", function() while true do end end)
service:get("/deadline-spin", function() depot.deadline(0.25); while true do end end)
service:get("/hook", function() return tostring(debug.gethook()) end)
service:get("/swallow", function()
  while true do pcall(function() while true do end end) end
end)
service:get("/inner", function()
  while true do coroutine.wrap(function() while true do end end)() end
end)
service:get("/sorted", function()
  local list = {}
  for i = 1, 100 do list[i] = i end
  table.sort(list, function(a, b) while true do end end)
end)
service:get("/hog", function()
  local hoard = {}
  while true do hoard[#hoard + 1] = string.rep("x", 1000) .. #hoard end
end)
service:get("/hog-caught", function()
  local ok, err = pcall(function()
    local hoard = {}
    while true do hoard[#hoard + 1] = string.rep("y", 1000) .. #hoard end
  end)
  return tostring(ok) .. " " .. tostring(err)
end)
service:get("/memory", function() return tostring(collectgarbage("count")) end)
service:get("/nap", function(req) depot.sleep(tonumber(req.query.s)); return "rested" end)
service:get("/quick-nap", function(req) depot.sleep(tonumber(req.query.s)); return "rested" end, { deadline = 0.5 })
service:get("/long-nap", function(req) depot.sleep(tonumber(req.query.s)); return "rested" end, { deadline = 5 })
service:post("/upload", function(req)
  local size = 0
  while true do
    local chunk, err = req:read()
    assert(chunk or not err, err)
    if not chunk then break end
    size = size + #chunk
    depot.sleep(0.1) -- as a handler writing each chunk to disk would wait
  end
  return tostring(size)
end)
service:get("/jit", function() return tostring(jit.status()) end)
)LUA";

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One worker, so that "the next requests are served" proves the looping one gave it back.
void one_worker(depot::Options& options) {
  options.threads = 1;
  options.limits.cpu_slice = 300ms;
}
}  // namespace

TEST_CASE("an endless loop is cut at cpu_slice with 503 and the worker serves the next 20 requests",
          "[lua_limits]") {
  TestServer server("app", kRoutes, one_worker);
  auto start = Clock::now();
  auto response = http_request(server.port(), "GET", "/spin");
  double held = seconds_since(start);
  CHECK(response.status == 503);
  CHECK(response.body.find("request_id") != std::string::npos);  // the service's error shape
  CHECK(held >= 0.3);                                            // not before its cpu_slice
  CHECK(held < 2.0);
  INFO("a looping handler held its worker for " << held << " s");
  for (int i = 0; i < 20; ++i) CHECK(http_request(server.port(), "GET", "/hello").body == "hello");
}

TEST_CASE("three loops at once are all cut and the worker serves again", "[lua_limits]") {
  TestServer server("app", kRoutes, one_worker);
  std::atomic<int> cut{0};
  std::vector<std::thread> loops;
  for (int i = 0; i < 3; ++i) {
    loops.emplace_back([&] {
      if (http_request(server.port(), "GET", "/spin").status == 503) ++cut;
    });
  }
  for (auto& loop : loops) loop.join();
  CHECK(cut == 3);
  int served = 0;
  for (int i = 0; i < 20; ++i) served += http_request(server.port(), "GET", "/hello").status == 200;
  CHECK(served == 20);
}

TEST_CASE("pcall, a script's own coroutine or a C boundary cannot keep a loop alive",
          "[lua_limits]") {
  TestServer server("app", kRoutes, one_worker);
  for (const char* path : {"/swallow", "/inner", "/sorted"}) {
    INFO(path);
    auto start = Clock::now();
    auto response = http_request(server.port(), "GET", path);
    CHECK((response.status == 503 || response.status == 500));
    CHECK(seconds_since(start) < 3.0);
    CHECK(http_request(server.port(), "GET", "/hello").body == "hello");
  }
}

TEST_CASE("running code is also cut at the request deadline when cpu_slice is off",
          "[lua_limits]") {
  TestServer server("app", kRoutes, [](depot::Options& options) {
    options.threads = 1;
    options.limits.cpu_slice = 0ms;
    options.limits.request_deadline = 400ms;
  });
  auto start = Clock::now();
  CHECK(http_request(server.port(), "GET", "/spin").status == 503);
  CHECK(seconds_since(start) < 2.0);
  CHECK(http_request(server.port(), "GET", "/hello").body == "hello");
}

TEST_CASE("depot.deadline while running moves the cut of a loop to it", "[lua_limits]") {
  TestServer server("app", kRoutes, [](depot::Options& options) {
    options.threads = 1;
    options.limits.cpu_slice = 0ms;  // only the deadline the route set, 0.25 s, can cut it
  });
  auto start = Clock::now();
  CHECK(http_request(server.port(), "GET", "/deadline-spin").status == 503);
  double held = seconds_since(start);
  CHECK(held >= 0.25);
  CHECK(held < 2.0);
  CHECK(http_request(server.port(), "GET", "/hello").body == "hello");
}

TEST_CASE("handlers run without a hook, and the one a loop got is gone after it was cut",
          "[lua_limits]") {
  TestServer server("app", kRoutes, one_worker);
  CHECK(http_request(server.port(), "GET", "/hook").body == "nil");
  CHECK(http_request(server.port(), "GET", "/spin").status == 503);
  CHECK(http_request(server.port(), "GET", "/hook").body == "nil");
  CHECK(http_request(server.port(), "GET", "/sorted").status >= 500);  // cut by an error there
  CHECK(http_request(server.port(), "GET", "/hook").body == "nil");
  // Counting instructions needs the hook from the first one: it stays.
  TestServer counting("app", kRoutes, [](depot::Options& options) {
    options.threads = 1;
    options.limits.instruction_budget = 50'000'000;
  });
  CHECK(http_request(counting.port(), "GET", "/hook").body == "external hook");
  CHECK(http_request(counting.port(), "GET", "/spin").status == 500);
  CHECK(http_request(counting.port(), "GET", "/hook").body == "external hook");
}

TEST_CASE("a memory hog fails with 500 at lua_memory, the state collects and serves again",
          "[lua_limits]") {
  TestServer server("app", kRoutes, [](depot::Options& options) {
    options.threads = 1;
    options.limits.lua_memory = 64 << 20;
  });
  auto response = http_request(server.port(), "GET", "/hog");
  CHECK(response.status == 500);
  CHECK(response.body.find("internal server error") != std::string::npos);
  double kilobytes = std::stod(http_request(server.port(), "GET", "/memory").body);
  CHECK(kilobytes < 16 * 1024);  // the hoard is gone, not held until the next GC cycle
  // Caught in the route, the error is an ordinary one: the route answers for itself.
  auto caught = http_request(server.port(), "GET", "/hog-caught");
  CHECK(caught.status == 200);
  CHECK(caught.body.find("false") == 0);
  CHECK(caught.body.find("not enough memory") != std::string::npos);
  for (int i = 0; i < 5; ++i) CHECK(http_request(server.port(), "GET", "/hello").body == "hello");
}

TEST_CASE("a hog stopped by cpu_slice before the cap leaves no garbage behind", "[lua_limits]") {
  TestServer server("app", kRoutes, one_worker);
  CHECK(http_request(server.port(), "GET", "/hog").status == 503);
  CHECK(std::stod(http_request(server.port(), "GET", "/memory").body) < 16 * 1024);
}

TEST_CASE("a slow upload that keeps arriving outlives request_deadline", "[lua_limits]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.request_deadline = 1s; });
  RawConnection connection(server.port());
  const int pieces = 25;  // one every 120 ms: 3 s in all, three deadlines
  connection.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                  std::to_string(pieces * 1000) + "\r\n\r\n");
  auto start = Clock::now();
  for (int i = 0; i < pieces; ++i) {
    std::this_thread::sleep_for(120ms);
    connection.send(std::string(1000, 'u'));
  }
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->body == std::to_string(pieces * 1000));
  CHECK(seconds_since(start) > 2.5);
}

TEST_CASE("a handler waiting without progress is still cut at request_deadline", "[lua_limits]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.request_deadline = 1s; });
  auto start = Clock::now();
  CHECK(http_request(server.port(), "GET", "/nap?s=5").status == 503);
  CHECK(seconds_since(start) < 3.0);
}

TEST_CASE("a route's own deadline replaces request_deadline", "[lua_limits]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.request_deadline = 1s; });
  auto start = Clock::now();
  CHECK(http_request(server.port(), "GET", "/quick-nap?s=5").status == 503);
  CHECK(seconds_since(start) < 2.0);
  CHECK(http_request(server.port(), "GET", "/long-nap?s=2.2").body == "rested");
}

TEST_CASE("a route deadline that is not a non-negative number refuses the scripts",
          "[lua_limits]") {
  CHECK_THROWS_WITH(TestServer("app", R"LUA(
local service = ...
service:get("/x", function() return "x" end, { deadline = "soon" })
)LUA"),
                    Catch::Contains("route: options.deadline must be a number of seconds"));
}

TEST_CASE("the JIT is off unless a service asks for it", "[lua_limits]") {
  TestServer plain("app", kRoutes);
  CHECK(http_request(plain.port(), "GET", "/jit").body == "false");
  TestServer compiled("app", kRoutes,
                      [](depot::Options& options) { options.services[0].jit = true; });
  CHECK(http_request(compiled.port(), "GET", "/jit").body == "true");
}

TEST_CASE("limits.lua_memory and cpu_slice are read from the config, with units for sizes",
          "[lua_limits]") {
  auto directory = depot::testing::make_temp_dir("depot-limits-");
  auto load = [&](const std::string& limits) {
    std::ofstream(directory / "depot.json") << R"({"limits": )" + limits + "}";
    depot::CommandLine command_line;
    command_line.config_file = (directory / "depot.json").string();
    return depot::load_options(command_line).limits;
  };
  CHECK(load(R"({"lua_memory": "64MiB", "cpu_slice": 0.5})").lua_memory == 64u << 20);
  CHECK(load(R"({"lua_memory": "64MiB", "cpu_slice": 0.5})").cpu_slice == 500ms);
  CHECK(load(R"({"lua_memory": "2 GiB"})").lua_memory == size_t{2} << 30);
  CHECK(load(R"({"lua_memory": 1000000})").lua_memory == 1000000u);
  CHECK(load("{}").lua_memory == size_t{512} << 20);
  CHECK_THROWS_WITH(load(R"({"lua_memory": "lots"})"), Catch::Contains("limits.lua_memory"));
  CHECK_THROWS_WITH(load(R"({"lua_memory": "5 parsecs"})"), Catch::Contains("unknown unit"));
  std::filesystem::remove_all(directory);
}

namespace {
// A `depot serve` directory with one worker, a 1 s drain and the given route body at GET /stuck.
std::filesystem::path serve_directory(const std::string& stuck_route) {
  auto directory = depot::testing::make_temp_dir("depot-stuck-");
  std::filesystem::create_directories(directory / "scripts" / "app");
  std::ofstream(directory / "scripts" / "app" / "init.lua")
      << "local service = ...\n"
         "service:get('/hello', function() return 'hello' end)\n"
         "service:get('/stuck', function() " +
             stuck_route + " end)\n";
  std::ofstream(directory / "depot.json")
      << R"({"services": [{"name": "app"}], "threads": 1, "watch_scripts": false, "drain_timeout": 1})";
  return directory;
}

// Starts GET /stuck, sends SIGTERM once it runs, and returns how long the process took to exit.
double seconds_to_exit_with_stuck_request(DepotProcess& depot, int& exit_status) {
  RawConnection stuck(depot.port);
  stuck.send("GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n");
  std::this_thread::sleep_for(300ms);
  auto start = Clock::now();
  kill(depot.pid, SIGTERM);
  exit_status = depot.wait_exit();
  return seconds_since(start);
}
}  // namespace

TEST_CASE("SIGTERM stops depot serve while a route loops in Lua", "[lua_limits][lifecycle]") {
  auto directory = serve_directory("while true do end");
  DepotProcess depot(directory, {"--config", "depot.json", "--port", "0", "--host", "127.0.0.1"});
  REQUIRE(depot.port != 0);
  int status = -2;
  double seconds = seconds_to_exit_with_stuck_request(depot, status);
  CHECK(seconds < 1.0 + 3.0);  // drain_timeout + grace; the default cpu_slice (2 s) cuts it first
  CHECK(status == 0);
  std::filesystem::remove_all(directory);
}

TEST_CASE("SIGTERM stops depot serve even while a worker is stuck in C code",
          "[lua_limits][lifecycle]") {
  // A backtracking pattern: hours inside string.find, where no hook runs.
  auto directory = serve_directory(
      "return tostring(string.find(string.rep('a', 80), '.-.-.-.-.-.-.-.-.-.-.-.-b'))");
  DepotProcess depot(directory, {"--config", "depot.json", "--port", "0", "--host", "127.0.0.1"});
  REQUIRE(depot.port != 0);
  int status = -2;
  double seconds = seconds_to_exit_with_stuck_request(depot, status);
  CHECK(seconds > 1.0);
  CHECK(seconds < 1.0 + 3.0 + 1.5);  // drain_timeout + grace + slack
  CHECK(status == 1);
  std::filesystem::remove_all(directory);
}
