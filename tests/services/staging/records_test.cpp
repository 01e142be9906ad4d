// The staging records at scale: 10,000 records seeded through the service's own Records module,
// then filtered lists that must answer right while reading about as many rows as they return
// (staging_record_rows_read_total on /metrics), and ids too long to be kv keys.
#include <catch2/catch.hpp>

#include "tests/services/staging/staging_fixture.hpp"
#include "tests/support/scrape.hpp"

using namespace depot::testing::staging;
using depot::testing::http_request;

namespace {

// Writes records as the service does (scripts/staging/records.lua), many per request.
const char* kSeed = R"(
local Records = require "staging.records"
local service = ...
local records = Records.new(1000000)
service:post("/seed/:count", function(req)
  for _ = 1, tonumber(req.params.count) do
    local record = records:start({ username = req.query.username, method = "local_copy",
      source = "s", target = "t" })
    records:finish(record, req.query.status, {})
  end
end)
)";

double rows_read(Staging& staging) {
  double value = depot::testing::sample(depot::testing::scrape(staging.port()),
                                        "staging_record_rows_read_total");
  return value < 0 ? 0 : value;
}

void seed(Staging& staging, int count, const std::string& username, const std::string& status) {
  auto response = http_request(
      staging.port(), "POST",
      "/seed/seed/" + std::to_string(count) + "?username=" + username + "&status=" + status);
  REQUIRE(response.status == 204);
}

}  // namespace

TEST_CASE("staging records: a filtered list of 10,000 records reads only what it returns",
          "[staging]") {
  Staging staging(json{{"RECORDS_MAX", 100000}});
  staging.server().write_script("seed", kSeed);
  add_service(staging.server(),
              {"seed", (staging.server().scripts_dir() / "seed").string(), {"/seed"}});
  // 3 records of "rare" among 10,000: one early, one in the middle, one late.
  seed(staging, 1, "rare", "failed");
  for (int i = 0; i < 5; ++i) seed(staging, 1000, "many", "success");
  seed(staging, 1, "rare", "success");
  for (int i = 0; i < 5; ++i) seed(staging, 1000, "many", "success");
  seed(staging, 1, "rare", "success");

  double before = rows_read(staging);
  CHECK(staging.records("?username=nobody&limit=50") == json::array());
  CHECK(staging.records("?username=rare&status=running") == json::array());
  auto rare = staging.records("?username=rare&limit=50");
  REQUIRE(rare.size() == 3);
  CHECK(rare[0]["status"] == "success");
  CHECK(rare[2]["status"] == "failed");
  CHECK(rare[0]["id"] > rare[1]["id"]);  // newest first
  CHECK(rare[1]["id"] > rare[2]["id"]);
  auto failed = staging.records("?status=failed");
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]["username"] == "rare");
  CHECK(staging.records("?username=rare&status=success").size() == 2);
  auto newest = staging.records("?limit=50");
  REQUIRE(newest.size() == 50);
  CHECK(newest[0] == rare[0]);
  // 3 + 1 + 2 found (each an index row and a record) + 50 unfiltered: nowhere near 10,000.
  CHECK(rows_read(staging) - before == 2 * (3 + 1 + 2) + 50);

  // A record that finishes moves between the status indexes; pruning removes its index rows.
  check_detail(staging.stage("nope", "rare", "a", "b"), 400, "Invalid staging method: nope");
  CHECK(staging.records("?username=rare&status=failed").size() == 2);
  CHECK(staging.records("?status=running") == json::array());
}

TEST_CASE("staging records: pruned records leave their index", "[staging]") {
  Staging staging(json{{"RECORDS_MAX", 5}});
  // Each worker prunes every 64 records it creates: of 128, one of the two workers made 64.
  for (int i = 0; i < 128; ++i) staging.stage("m" + std::to_string(i), "pruned", "a", "b");
  auto all = staging.records("?limit=1000");
  CHECK(all.size() < 128);
  double before = rows_read(staging);
  auto filtered = staging.records("?username=pruned&status=failed&limit=1000");
  CHECK(filtered == all);
  // An index row left by a pruned record would be read and found empty.
  CHECK(rows_read(staging) - before == 2 * filtered.size());
}

TEST_CASE("staging records: an id longer than any record's is not found", "[staging]") {
  Staging staging;
  check_detail(staging.get("/stage-data/records/" + std::string(600, '1') + "-ab"), 404,
               "Record not found");
  check_detail(staging.get("/stage-data/records/" + std::string(40, '1') + "-ab"), 404,
               "Record not found");
}
