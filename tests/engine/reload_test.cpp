// Hot reload: a good script takes over, a broken one leaves the old generation serving, in-flight
// requests finish on the generation they started on, and Lua states do not pile up.
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
std::string version_script(const std::string& version) {
  return R"LUA(
local depot = require "depot"
local service = ...
service:get("/version", function() return ")LUA" +
         version + R"LUA(" end)
service:get("/slow", function() depot.sleep(1); return ")LUA" +
         version + R"LUA(" end)
)LUA";
}
}  // namespace

TEST_CASE("reload swaps in a good script and refuses a broken one", "[reload]") {
  TestServer server("app", version_script("one"));
  CHECK(http_request(server.port(), "GET", "/version").body == "one");

  server.write_script("app", version_script("two"));
  CHECK(server.server().reload().empty());
  CHECK(http_request(server.port(), "GET", "/version").body == "two");

  server.write_script("app",
                      "local service = ...\nservice:get('/version', function() return 'x' end");
  std::string error = server.server().reload();
  CHECK_THAT(error, Catch::Contains("service app") && Catch::Contains("init.lua"));
  CHECK(http_request(server.port(), "GET", "/version").body == "two");

  server.write_script("app", "local service = ...\nerror('refusing to start')");
  CHECK_THAT(server.server().reload(), Catch::Contains("refusing to start"));
  CHECK(http_request(server.port(), "GET", "/version").body == "two");
}

TEST_CASE("reload refuses conflicting routes", "[reload]") {
  TestServer server("app", version_script("one"));
  server.write_script("app", R"LUA(
local service = ...
service:get("/version", function() return "a" end)
service:get("/version/", function() return "b" end)
)LUA");
  CHECK_THAT(server.server().reload(), Catch::Contains("conflicts with"));
  CHECK(http_request(server.port(), "GET", "/version").body == "one");
}

TEST_CASE("in-flight requests finish on the generation they started on", "[reload]") {
  TestServer server("app", version_script("old"));
  std::string slow_body;
  std::thread slow([&] { slow_body = http_request(server.port(), "GET", "/slow").body; });
  std::this_thread::sleep_for(200ms);
  server.write_script("app", version_script("new"));
  CHECK(server.server().reload().empty());
  CHECK(http_request(server.port(), "GET", "/version").body == "new");
  CHECK(server.server().runtime_count() == 2);  // the old state still runs /slow
  slow.join();
  CHECK(slow_body == "old");
  CHECK(server.server().runtime_count() == 1);
}

TEST_CASE("the watcher reloads when a script changes on disk", "[reload]") {
  TestServer server("app", version_script("one"),
                    [](depot::Options& options) { options.watch_scripts = true; });
  server.write_script("app", version_script("edited"));
  std::string body;
  for (int i = 0; i < 50 && body != "edited"; ++i) {
    std::this_thread::sleep_for(100ms);
    body = http_request(server.port(), "GET", "/version").body;
  }
  CHECK(body == "edited");
}

TEST_CASE("an embedder adds a service to a running server", "[reload]") {
  TestServer server("app", version_script("one"));
  auto stub = server.scripts_dir() / "stub.lua";
  std::ofstream(stub)
      << "local service = ...\nservice:get('/stub', function() return 'stubbed' end)\n";
  CHECK(server.server().add_service({"stub", stub, {"/"}}).empty());
  CHECK(http_request(server.port(), "GET", "/stub").body == "stubbed");
  CHECK(http_request(server.port(), "GET", "/version").body == "one");
  CHECK_THAT(server.server().add_service({"clash", stub, {"/"}}), Catch::Contains("conflicts"));
  CHECK(server.server().reload().empty());  // the refused service was not kept
}
