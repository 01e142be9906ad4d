// The repository's config/depot.json serves the file cache as the spec says: at "/", "/cache" and
// "/services/cache", beside the other services, with the original's shape for unknown paths.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/services/file_cache/file_cache_fixture.hpp"

using namespace depot::testing::file_cache;
using depot::testing::http_request;
using depot::testing::TestServer;

TEST_CASE("file cache: the default config mounts it at /, /cache and /services/cache",
          "[file_cache]") {
  json config = json::parse(std::ifstream(DEPOT_SOURCE_DIR "/config/depot.json"));
  TestServer server(std::vector<TestServer::Service>{}, [&](depot::Options& options) {
    options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
    for (const auto& service : config["services"]) {
      std::vector<std::string> mounts;
      if (service["mount"].is_string()) {
        mounts.push_back(service["mount"]);
      } else {
        for (const auto& mount : service["mount"]) mounts.push_back(mount);
      }
      options.services.push_back({service["name"],
                                  service.value("script", service["name"].get<std::string>()),
                                  mounts, service.value("config", json::object())});
    }
  });
  for (const std::string prefix : {"", "/cache", "/services/cache"}) {
    INFO(prefix);
    CHECK(json::parse(http_request(server.port(), "GET", prefix + "/v1").body).contains("routes"));
    CHECK(error_of(http_request(server.port(), "POST", prefix + "/v1/cache_id")) ==
          "Missing header: Authorization");
    auto unknown = http_request(server.port(), "GET", prefix + "/no/such/path");
    CHECK(unknown.status == 404);
    CHECK(json::parse(unknown.body) == json{{"status", "error"}});
  }
  CHECK(json::parse(http_request(server.port(), "GET", "/").body).contains("endpoints"));
  CHECK(http_request(server.port(), "GET", "/hello").body == "hello\n");
}
