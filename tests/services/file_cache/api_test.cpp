// The original's API tests (src/test/caching_service/test_api_v1.py, all 19) over HTTP, each
// with a body of its own instead of the original's shared, lru_cached ids. The four that created
// a foreign cache through the server's Minio module create it as the other fixture user instead,
// and "the object is gone" is checked with a GET.
#include <catch2/catch.hpp>

#include "tests/services/file_cache/file_cache_fixture.hpp"

using namespace depot::testing::file_cache;
using depot::testing::http_request;

namespace {
const std::string kUnknownId =
    "0b3a0f6e-7d5c-4c64-9a2b-2f1d5e6c7a80";  // a uuid4, as the original used

std::string other_users_cache(FileCache& cache) {
  return new_cache_id(cache.port(), kToken2, "other user");
}
}  // namespace

TEST_CASE("file cache api: root lists the routes (test_root)", "[file_cache]") {
  FileCache cache;
  auto v1 = http_request(cache.port(), "GET", "/v1");
  CHECK(v1.status == 200);
  CHECK(v1.header("content-type") == "application/json");
  CHECK(json::parse(v1.body) ==
        json::parse(R"({"routes": {"root": "GET /", "generate_cache_id": "POST /cache_id",
    "download_cache_file": "GET /cache/<cache_id>", "upload_cache_file": "POST /cache/<cache_id>",
    "delete_cache_file": "DELETE /cache/<cache_id>"}})"));
  CHECK(http_request(cache.port(), "GET", "/v1/").body == v1.body);
  auto root = http_request(cache.port(), "GET", "/");
  CHECK(root.status == 200);
  CHECK(
      json::parse(root.body) ==
      json::parse(
          R"({"endpoints": {"api_v1": {"path": "/v1", "desc": "API Version 1", "example": "GET /v1"}}})"));
}

TEST_CASE("file cache api: missing auth is 400 on every route (test_missing_auth)",
          "[file_cache]") {
  FileCache cache;
  // The original sent POST to all four URLs; the other methods are checked too.
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/cache_id"},
                                                        {"POST", "/v1/cache/example"},
                                                        {"GET", "/v1/cache/example"},
                                                        {"DELETE", "/v1/cache/example"}}) {
    auto response = http_request(cache.port(), method, path);
    INFO(method << " " << path);
    check_error(response, 400, "Missing header: Authorization");
  }
  CHECK(http_request(cache.port(), "POST", "/v1/cache_id", "", "Authorization: ").status ==
        400);  // empty is missing
  CHECK(cache.auth_calls() == 0);
}

TEST_CASE("file cache api: an invalid token is 403 on every route (test_invalid_auth)",
          "[file_cache]") {
  FileCache cache;
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/cache_id"},
                                                        {"POST", "/v1/cache/example"},
                                                        {"GET", "/v1/cache/example"},
                                                        {"DELETE", "/v1/cache/example"}}) {
    auto response = http_request(cache.port(), method, path, "", "Authorization: invalid_token");
    INFO(method << " " << path);
    check_error(response, 403, "10020 Invalid token");
  }
}

TEST_CASE("file cache api: a valid cache_id call (test_make_cache_id_valid)", "[file_cache]") {
  FileCache cache;
  auto response = post_cache_id(cache.port(), unique_body("make_cache_id_valid"));
  REQUIRE(response.status == 200);
  CHECK(response.header("content-type") == "application/json");
  auto body = json::parse(response.body);
  CHECK(body["status"] == "ok");
  CHECK(body["cache_id"].get<std::string>().size() == 128);
  CHECK(body["metadata"]["filename"] == "placeholder");
  CHECK(body["metadata"]["token_id"] == cache.auth_url() + ":username");
  CHECK(body["metadata"].size() == 3);
}

TEST_CASE("file cache api: malformed JSON is 400 (test_make_cache_id_malformed_json)",
          "[file_cache]") {
  FileCache cache;
  auto response = post_cache_id(cache.port(), "{{{{((((");
  check_error(response, 400,
              "JSON parsing error: Expecting property name enclosed in double quotes: line 1 "
              "column 2 (char 1)");
}

TEST_CASE("file cache api: cache_id with an invalid token is 403 (test_make_cache_id_unauthorized)",
          "[file_cache]") {
  FileCache cache;
  auto response =
      post_cache_id(cache.port(), unique_body("unauthorized"), "Authorization: invalid_token");
  check_error(response, 403, "10020 Invalid token");
}

TEST_CASE("file cache api: a wrong Content-Type is 400 (test_make_cache_id_wrong_content_type)",
          "[file_cache]") {
  FileCache cache;
  auto response = http_request(cache.port(), "POST", "/v1/cache_id", unique_body("wrong type"),
                               kToken + "\r\nContent-Type: multipart/form-data");
  check_error(response, 400,
              "Invalid Content-Type: 'multipart/form-data'. Must be: 'application/json'.");
}

TEST_CASE("file cache api: a missing Content-Type is 400 (test_make_cache_id_missing_content_type)",
          "[file_cache]") {
  FileCache cache;
  auto response =
      http_request(cache.port(), "POST", "/v1/cache_id", unique_body("no type"), kToken);
  check_error(response, 400, "Invalid Content-Type: 'None'. Must be: 'application/json'.");
}

TEST_CASE("file cache api: an empty body is 400 (test_make_cache_id_missing_json)",
          "[file_cache]") {
  FileCache cache;
  auto response = post_cache_id(cache.port(), "");
  check_error(response, 400, "JSON parsing error: Expecting value: line 1 column 1 (char 0)");
}

TEST_CASE("file cache api: download a file (test_download_cache_file_valid)", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "download valid");
  REQUIRE(upload(cache.port(), id, "test.json", R"({"hallo": "welt"})").status == 200);
  auto response = download(cache.port(), id);
  CHECK(response.status == 200);
  CHECK(response.body == R"({"hallo": "welt"})");
}

TEST_CASE(
    "file cache api: download another user's cache (test_download_cache_file_unauthorized_cache)",
    "[file_cache]") {
  FileCache cache;
  std::string id = other_users_cache(cache);
  REQUIRE(upload(cache.port(), id, "theirs.txt", "not yours", kToken2).status == 200);
  auto response = download(cache.port(), id);
  check_error(response, 403, "You do not have access to that cache");
}

TEST_CASE("file cache api: download a missing cache (test_download_cache_file_missing_cache)",
          "[file_cache]") {
  FileCache cache;
  auto response = download(cache.port(), kUnknownId);
  check_error(response, 404, "Cache ID not found");
}

TEST_CASE("file cache api: upload a file (test_upload_cache_file_valid)", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "upload valid");
  auto response = upload(cache.port(), id, "test.json", R"({"hallo": "welt"})");
  CHECK(response.status == 200);
  CHECK(json::parse(response.body) == json{{"status", "ok"}});
}

TEST_CASE(
    "file cache api: upload to another user's cache (test_upload_cache_file_unauthorized_cache)",
    "[file_cache]") {
  FileCache cache;
  std::string id = other_users_cache(cache);
  auto response = upload(cache.port(), id, "test.json", R"({"x": 1})");
  check_error(response, 403, "You do not have access to that cache");
}

TEST_CASE("file cache api: upload to a missing cache (test_upload_cache_file_missing_cache)",
          "[file_cache]") {
  FileCache cache;
  auto response = upload(cache.port(), kUnknownId, "test.json", R"({"x": 1})");
  check_error(response, 404, "Cache ID not found");
}

TEST_CASE("file cache api: upload without the file field (test_upload_cache_file_missing_file)",
          "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "missing file");
  auto response =
      http_request(cache.port(), "POST", "/v1/cache/" + id,
                   multipart("filexx", "test.json", R"({"x": 1})"), kToken + "\r\n" + kMultipart);
  check_error(response, 400, "File field missing");
}

TEST_CASE("file cache api: delete a cache (test_delete_valid)", "[file_cache][fs_layout]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "delete valid");
  REQUIRE(upload(cache.port(), id, "test.json", "to be deleted").status == 200);
  auto response = remove(cache.port(), id);
  CHECK(response.status == 200);
  CHECK(json::parse(response.body) == json{{"status", "ok"}});
  CHECK(error_of(download(cache.port(), id)) == "Cache ID not found");
  CHECK_FALSE(std::filesystem::exists(cache.stored_file(id)));
}

TEST_CASE("file cache api: delete another user's cache (test_delete_unauthorized_cache)",
          "[file_cache]") {
  FileCache cache;
  std::string id = other_users_cache(cache);
  auto response = remove(cache.port(), id);
  check_error(response, 403, "You do not have access to that cache");
  CHECK(remove(cache.port(), id, kToken2).status == 200);
}

TEST_CASE("file cache api: delete a missing cache (test_delete_missing_cache)", "[file_cache]") {
  FileCache cache;
  auto response = remove(cache.port(), kUnknownId);
  check_error(response, 404, "Cache ID not found");
}

TEST_CASE("file cache api: unknown paths and wrong methods", "[file_cache]") {
  FileCache cache;
  for (const char* path : {"/v1/nothing", "/v2", "/v1/cache", "/v1/cache/a/b"}) {
    auto unknown = http_request(cache.port(), "GET", path);
    INFO(path);
    CHECK(unknown.status == 404);
    CHECK(json::parse(unknown.body) == json{{"status", "error"}});
  }
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/cache_id"}, {"PUT", "/v1/cache/abc"}, {"POST", "/"}, {"DELETE", "/v1"}}) {
    auto wrong = http_request(cache.port(), method, path, "", kToken);
    INFO(method << " " << path);
    CHECK(wrong.status == 405);
    CHECK(json::parse(wrong.body) == json({{"status", "error"}, {"error", "Method not allowed"}}));
  }
}
