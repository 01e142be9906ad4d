// Embedding Depot in your own C++ test harness: start a server with your own Lua routes on a free
// port, talk to it over HTTP, stop it. Here the routes are a stand-in for an upstream service
// (a token-introspection endpoint) that the code under test would call.
//
//   ./build/examples/embedded_harness
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "engine/server.hpp"
#include "tests/support/http_client.hpp"

int main() {
  namespace fs = std::filesystem;
  fs::path scripts = fs::temp_directory_path() / ("depot-harness-" + std::to_string(getpid()));
  fs::create_directories(scripts / "fake_auth");
  std::ofstream(scripts / "fake_auth" / "init.lua") << R"LUA(
local service = ...
local users = { good_token = "alice" }
service:get("/api/V2/token", function(req)
  local user = users[req:header("Authorization") or ""]
  if not user then
    return 401, { error = { message = "10020 Invalid token" } }
  end
  return { user = user, cachefor = 300000 }
end)
)LUA";

  depot::Options options;
  options.host = "127.0.0.1";
  options.port = 0;  // any free port
  options.threads = 1;
  options.scripts_dir = scripts;
  options.data_dir = scripts / "data";
  options.services.push_back({"fake_auth", "fake_auth", {"/"}});

  depot::Server server(options);
  server.start();
  std::cout << "fake auth service on port " << server.port() << "\n";

  auto good = depot::testing::http_request(server.port(), "GET", "/api/V2/token", "",
                                           "Authorization: good_token");
  auto bad = depot::testing::http_request(server.port(), "GET", "/api/V2/token", "",
                                          "Authorization: nope");
  std::cout << good.status << " " << good.body << "\n" << bad.status << " " << bad.body << "\n";

  server.stop();
  fs::remove_all(scripts);
  return good.status == 200 && bad.status == 401 ? 0 : 1;
}
