// The image cache on two replicas sharing one store (issue 14): a reader waiting on replica A for
// an image that replica B fetches gets it once B has stored it. With the kv on PostgreSQL B's
// notification crosses (LISTEN/NOTIFY) and wakes the reader at once; on shared LMDB depot.notify
// stays inside B, and A's reader finds the image at its next re-check (at most a second later).
#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/depot_cluster.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::DepotCluster;
using depot::testing::http_request;
using depot::testing::TestServer;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("image cache: a reader waiting on one replica gets the image another replica fetched",
          "[scale_out][image_cache]") {
  TestServer kentik(std::vector<TestServer::Service>{}, [](depot::Options& options) {
    options.services.push_back(
        {"kentik_api", DEPOT_SOURCE_DIR "/tests/stubs/kentik_api", {"/kentik"}});
  });
  json config = {
      {"KT_AUTH_EMAIL", "test@example.com"},
      {"KT_AUTH_TOKEN", "secret-token"},
      {"KENTIK_API_URL", "http://127.0.0.1:" + std::to_string(kentik.port()) + "/kentik"},
      {"ENTRY_WAIT_TIMEOUT", 10}};
  DepotCluster cluster(2, json::array({{{"name", "image_cache"},
                                        {"script", "image_cache"},
                                        {"mount", {"/"}},
                                        {"config", config}}}));
  json query = {{"queries",
                 {{{"bucket", "Left +Y Axis"},
                   {"isOverlay", false},
                   {"query", {{"metric", "bytes"}, {"topx", 8}, {"starting_time", nullptr}}}}}},
                {"imageType", "png"},
                {"stub", {{"name", "across"}, {"delay", 1}}}};
  auto started = std::chrono::steady_clock::now();
  auto created = http_request(cluster.replica_port(1), "POST", "/requests",
                              json{{"api_query", query}}.dump(), "Content-Type: application/json");
  REQUIRE(created.status == 200);
  std::string id = json::parse(created.body)["id"];
  auto image = http_request(cluster.replica_port(0), "GET", "/image/" + id);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(image.status == 200);
  CHECK(image.header("content-type") == "image/png");
  CHECK(json::parse(http_request(kentik.port(), "GET", "/kentik/calls/across").body)["calls"] == 1);
  // The fetch takes 1 s. On PostgreSQL B's depot.notify wakes A's reader at once; on LMDB the
  // reader's re-check comes at most 1 s after the fetch ends.
  CHECK(seconds < (cluster.on_postgres() ? 1.6 : 2.5));
  WARN("reader on replica A answered " << seconds
                                       << " s after the request to replica B (fetch: 1 s)");
}
