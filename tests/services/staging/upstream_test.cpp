// The original's portable tests (tests/test_staging_service.py; specs/staging.md §3.5) over HTTP,
// with its data layout (data/file1.txt, file2.txt, folder/file3.txt, folder/file4.txt) under a
// temporary SOURCE instead of /tmp/storage_a, and absolute paths inside it as the original sent.
// Its ensure_user_exists unit tests mocked subprocess; what is left of them is the behaviour:
// staging never creates OS accounts unless configured to.
#include <pwd.h>

#include <catch2/catch.hpp>

#include "tests/services/staging/staging_fixture.hpp"

using namespace depot::testing::staging;

TEST_CASE("staging upstream: test_file_staging_with_read_only_permissions", "[staging]") {
  Staging staging;
  for (const char* name : {"file1.txt", "file2.txt"}) {
    auto response =
        staging.stage("local_copy", "michele", (staging.source() / "data" / name).string(),
                      std::string("project/") + name);
    CHECK(response.status == 200);
    CHECK(nlohmann::json::parse(response.body)["status"] == "success");
    auto copy = staging.target() / "michele/project" / name;
    CHECK(stdfs::exists(copy));
    CHECK(mode_of(copy) == 0400);
  }
}

TEST_CASE("staging upstream: test_directory_staging_with_read_only_permissions", "[staging]") {
  Staging staging;
  auto response = staging.stage("local_copy", "michele",
                                (staging.source() / "data/folder").string(), "project/folder");
  CHECK(response.status == 200);
  auto copy = staging.target() / "michele/project/folder";
  CHECK(mode_of(copy) == 0500);
  CHECK(mode_of(copy / "file3.txt") == 0400);
  CHECK(mode_of(copy / "file4.txt") == 0400);
}

TEST_CASE("staging upstream: test_invalid_method", "[staging]") {
  Staging staging;
  check_detail(staging.stage("invalid_method", "michele",
                             (staging.source() / "data/file1.txt").string(), "project/file1.txt"),
               400, "Invalid staging method: invalid_method");
}

TEST_CASE("staging upstream: test_missing_source_path", "[staging]") {
  Staging staging;
  auto missing = (staging.source() / "data/missing_file.txt").string();
  check_detail(staging.stage("local_copy", "test_user", missing, "project/missing_file.txt"), 400,
               "Source path does not exist: " + missing);
}

TEST_CASE("staging upstream: test_no_data_field", "[staging]") {
  Staging staging;
  auto response = staging.post("/stage-data/?method=local_copy&username=test_user", "{}");
  CHECK(response.status == 422);
  CHECK(detail_of(response).is_array());
}

TEST_CASE("staging upstream: test_malformed_json", "[staging]") {
  Staging staging;
  auto response =
      staging.post("/stage-data/?method=local_copy&username=test_user", "Not a valid JSON", "");
  CHECK(response.status == 422);
  CHECK(detail_of(response).is_array());
}

TEST_CASE("staging upstream: test_direct_download", "[staging]") {
  Staging staging;
  auto response = staging.stage("direct_download", "test_user",
                                (staging.source() / "data/file1.txt").string(), "ignored");
  CHECK(response.status == 200);
  CHECK(response.header("content-type") == "application/octet-stream");
  CHECK(response.header("content-disposition").rfind("attachment", 0) == 0);
}

TEST_CASE("staging upstream: test_direct_download_file_not_found", "[staging]") {
  Staging staging;
  auto response = staging.stage("direct_download", "test_user",
                                (staging.source() / "data/missing.txt").string(), "ignored");
  CHECK(response.status == 400);
  CHECK(detail_of(response).get<std::string>().find("Source path does not exist") !=
        std::string::npos);
}

TEST_CASE("staging upstream: test_jupyter_copy_user_not_found", "[staging]") {
  Staging staging;
  auto response = staging.stage("jupyter_copy", "unknown_user",
                                (staging.source() / "data/file1.txt").string(), "file1.txt");
  CHECK(response.status == 500);
  CHECK(detail_of(response).get<std::string>().find("Failed to fetch user status") !=
        std::string::npos);
  CHECK(staging.hub_calls() == nlohmann::json({{"user", 1}}));  // exactly one hub call
}

TEST_CASE("staging upstream: ensure_user_exists — no OS account is ever created", "[staging]") {
  Staging staging;
  REQUIRE(::getpwnam("depot_staging_nobody") == nullptr);
  check_success(staging.stage("local_copy", "depot_staging_nobody", "data/file1.txt", "f.txt"),
                "Data staged for user depot_staging_nobody with method local_copy");
  CHECK(::getpwnam("depot_staging_nobody") == nullptr);
}
