// Specs (`depot test`) are no route scripts (engine/spec_files.hpp): editing one next to a
// service reloads nothing, and a spec named as a service's script is refused.
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "engine/server.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kScript = R"LUA(
local service = ...
service:get("/version", function() return "one" end)
)LUA";

// Waits (up to 3 s) for the server's generation to leave `from`.
uint64_t generation_after(depot::Server& server, uint64_t from) {
  for (int i = 0; i < 30 && server.generation() == from; ++i) std::this_thread::sleep_for(100ms);
  return server.generation();
}
}  // namespace

TEST_CASE("the watcher reloads nothing when a spec changes, and still does for a script",
          "[reload][specs]") {
  TestServer server("app", kScript, [](depot::Options& options) { options.watch_scripts = true; });
  uint64_t first = server.server().generation();
  std::filesystem::path service = server.scripts_dir() / "app";
  std::filesystem::create_directories(service / "spec");
  std::ofstream(service / "spec" / "app_spec.lua") << "describe('app', function() end)\n";
  std::ofstream(service / "helpers_spec.lua") << "describe('helpers', function() end)\n";
  std::ofstream(service / "spec" / "app_spec.lua", std::ios::app) << "-- edited\n";
  std::this_thread::sleep_for(600ms);  // four times the watcher's settling time
  CHECK(server.server().generation() == first);

  server.write_script("app", std::string(kScript) + "-- edited\n");
  CHECK(generation_after(server.server(), first) > first);
}

TEST_CASE("a spec named as a service's script is refused, naming depot test", "[startup][specs]") {
  std::filesystem::path root = depot::testing::make_temp_dir("depot-spec-script-");
  std::ofstream(root / "app_spec.lua") << "describe('app', function() end)\n";
  depot::Options options;
  options.port = 0;
  options.threads = 1;
  options.watch_scripts = false;
  options.data_dir = root / "data";
  options.scripts_dir = root;
  options.services.push_back({"app", "app_spec.lua", {"/"}});
  depot::Server server(options);
  std::string error;
  try {
    server.start();
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::filesystem::remove_all(root);
  CHECK_THAT(error, Catch::Contains("is a spec, not a route script (run it with depot test)"));
}
