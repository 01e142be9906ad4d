// The file cache service end to end over HTTP: every route and error of the KBase caching API,
// with KBase's auth stubbed by a Lua script that the same Depot serves (tests/stubs/kbase_auth).
#include <catch2/catch.hpp>
#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::HttpResponse;
using depot::testing::http_request;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {
const std::string kToken = "Authorization: non_admin_token";
const std::string kToken2 = "Authorization: non_admin_token2";
const std::string kJson = "Content-Type: application/json";
const std::string kBoundary = "depotTestBoundary0123456789";

// A Depot serving the auth stub under /auth and the file cache under / and /cache.
struct FileCache {
  std::unique_ptr<TestServer> server;
  std::string auth_url;

  explicit FileCache(json extra = json::object(), std::filesystem::path data_dir = {}) {
    server = std::make_unique<TestServer>(std::vector<TestServer::Service>{}, [&](depot::Options& options) {
      options.threads = 2;
      options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
      if (!data_dir.empty()) options.data_dir = data_dir;
      options.services.push_back({"kbase_auth", DEPOT_SOURCE_DIR "/tests/stubs/kbase_auth", {"/auth"}});
    });
    auth_url = "http://127.0.0.1:" + std::to_string(port()) + "/auth";
    json config = {{"KBASE_AUTH_URL", auth_url}};
    config.update(extra);
    std::string error = server->server().add_service({"file_cache", "file_cache", {"/", "/cache"}, config});
    REQUIRE(error.empty());
  }
  uint16_t port() const { return server->port(); }
};

std::string multipart(const std::string& field, const std::string& filename, const std::string& content) {
  return "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\"" + filename +
         "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + "\r\n--" + kBoundary + "--\r\n";
}

const std::string kMultipart = "Content-Type: multipart/form-data; boundary=" + kBoundary;

std::string error_of(const HttpResponse& response) {
  auto body = json::parse(response.body, nullptr, false);
  return body.is_object() && body.contains("error") ? body["error"].get<std::string>() : "<no error: " + response.body + ">";
}

std::string new_cache_id(uint16_t port, const std::string& token = kToken, const std::string& body = "") {
  static std::atomic<int> counter{0};
  std::string payload = body.empty() ? R"({"test": )" + std::to_string(++counter) + ", \"pid\": " + std::to_string(getpid()) + "}" : body;
  auto response = http_request(port, "POST", "/v1/cache_id", payload, token + "\r\n" + kJson);
  REQUIRE(response.status == 200);
  return json::parse(response.body)["cache_id"];
}

HttpResponse upload(uint16_t port, const std::string& id, const std::string& filename, const std::string& content,
                    const std::string& token = kToken) {
  return http_request(port, "POST", "/v1/cache/" + id, multipart("file", filename, content), token + "\r\n" + kMultipart);
}

std::string blake2b_hex(const std::string& text) {
  unsigned char digest[64];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(text.data()), text.size(), nullptr, 0);
  char hex[129];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}
}  // namespace

TEST_CASE("file cache: the cache_id vectors of the original service", "[file_cache]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(std::string("package.path = '") + DEPOT_SOURCE_DIR + "/scripts/?.lua;' .. package.path\n" + R"LUA(
    local cache_id = require "file_cache.cache_id"
    local json = require "json"
    assert(cache_id.compute("http://auth:5000:username", json.python_json('{"xyz":123}')) ==
      "4b573346e9f80b83f4045e7586df5a49d28175247af57be3d92aa3518a9cdaf6e48e31ca78dbfb250cc8b1cb47abe9e92baba070fcdda728ec4f607372de2708")
    assert(cache_id.compute("https://kbase.us/services/auth:username",
      json.python_json('{"method_name": "mymethod", "params": {"contig_length": 123}}')) ==
      "685cefc594e029ea84c359b388aeff8ea24d2d659fbd8a323443ddfe3cb5c161d33ddc1c715322456f6054975d354451b86c8eeb7018a310d529ab4144584c0c")
    assert(json.python_json('{"xyz":123,"abc":[1,2.0,{"b":1,"a":"é"}]}') ==
      '{"abc": [1, 2.0, {"a": "\\u00e9", "b": 1}], "xyz": 123}')
    local secure = require("file_cache.secure_filename").secure_filename
    assert(secure("My cool movie.mov") == "My_cool_movie.mov")
    assert(secure("../../../etc/passwd") == "etc_passwd")
    assert(secure("i contain cool ümläuts.txt") == "i_contain_cool_umlauts.txt")
    assert(secure("日本") == "file")
    assert(secure("...") == "file")
  )LUA") == "");
}

TEST_CASE("file cache: root, v1, unknown paths and wrong methods", "[file_cache]") {
  FileCache cache;
  CHECK(json::parse(http_request(cache.port(), "GET", "/").body)["endpoints"]["api_v1"]["path"] == "/v1");
  auto v1 = http_request(cache.port(), "GET", "/v1/");
  CHECK(v1.status == 200);
  CHECK(json::parse(v1.body)["routes"]["generate_cache_id"] == "POST /cache_id");
  auto unknown = http_request(cache.port(), "GET", "/v1/nothing");
  CHECK(unknown.status == 404);
  CHECK(unknown.body == R"({"status":"error"})");
  auto wrong = http_request(cache.port(), "PUT", "/v1/cache_id");
  CHECK(wrong.status == 405);
  CHECK(error_of(wrong) == "Method not allowed");
}

TEST_CASE("file cache: missing and invalid tokens", "[file_cache]") {
  FileCache cache;
  for (const char* path : {"/v1/cache_id", "/v1/cache/abc"}) {
    auto missing = http_request(cache.port(), "POST", path, "{}", kJson);
    CHECK(missing.status == 400);
    CHECK(error_of(missing) == "Missing header: Authorization");
  }
  for (const char* method : {"GET", "DELETE"}) {
    CHECK(http_request(cache.port(), method, "/v1/cache/abc").status == 400);
  }
  auto invalid = http_request(cache.port(), "POST", "/v1/cache_id", R"({"a": 1})", "Authorization: invalid_token\r\n" + kJson);
  CHECK(invalid.status == 403);
  CHECK(error_of(invalid) == "10020 Invalid token");
}

TEST_CASE("file cache: cache ids are byte-compatible and idempotent", "[file_cache]") {
  FileCache cache;
  auto response = http_request(cache.port(), "POST", "/v1/cache_id", R"({"xyz":123})", kToken + "\r\n" + kJson);
  REQUIRE(response.status == 200);
  auto body = json::parse(response.body);
  std::string token_id = cache.auth_url + ":username";
  CHECK(body["status"] == "ok");
  CHECK(body["cache_id"] == blake2b_hex(token_id + "\n{\"xyz\": 123}"));
  CHECK(body["metadata"]["filename"] == "placeholder");
  CHECK(body["metadata"]["token_id"] == token_id);
  CHECK(std::stol(body["metadata"]["expiration"].get<std::string>()) > time(nullptr) + 6 * 24 * 3600);
  auto again = http_request(cache.port(), "POST", "/v1/cache_id", R"({ "xyz" : 123 })",
                            kToken + "\r\nContent-Type: application/json; charset=utf-8");
  CHECK(json::parse(again.body)["cache_id"] == body["cache_id"]);
  auto other_user = json::parse(http_request(cache.port(), "POST", "/v1/cache_id", R"({"xyz":123})", kToken2 + "\r\n" + kJson).body);
  CHECK(other_user["cache_id"] != body["cache_id"]);
}

TEST_CASE("file cache: content type and JSON body errors", "[file_cache]") {
  FileCache cache;
  auto multipart_type = http_request(cache.port(), "POST", "/v1/cache_id", "{}", kToken + "\r\nContent-Type: multipart/form-data");
  CHECK(multipart_type.status == 400);
  CHECK(error_of(multipart_type) == "Invalid Content-Type: 'multipart/form-data'. Must be: 'application/json'.");
  auto no_type = http_request(cache.port(), "POST", "/v1/cache_id", "{}", kToken);
  CHECK(error_of(no_type) == "Invalid Content-Type: 'None'. Must be: 'application/json'.");
  auto empty = http_request(cache.port(), "POST", "/v1/cache_id", "", kToken + "\r\n" + kJson);
  CHECK(empty.status == 400);
  CHECK(error_of(empty) == "JSON parsing error: Expecting value: line 1 column 1 (char 0)");
  auto malformed = http_request(cache.port(), "POST", "/v1/cache_id", "{\"x\": ", kToken + "\r\n" + kJson);
  CHECK(malformed.status == 400);
  CHECK(error_of(malformed).rfind("JSON parsing error", 0) == 0);
  for (const char* shape : {"{}", "[]", "\"x\"", "1", "null"}) {
    auto wrong = http_request(cache.port(), "POST", "/v1/cache_id", shape, kToken + "\r\n" + kJson);
    CHECK(wrong.status == 400);
    CHECK(error_of(wrong) == "Must provide non-empty JSON data for the cache identifier");
  }
}

TEST_CASE("file cache: upload, download with headers and ranges, replace, delete", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port());
  auto placeholder = http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken);
  CHECK(placeholder.status == 404);
  CHECK(error_of(placeholder) == "Cache ID not found");

  std::string content = R"({"some": "json", "bytes": ")" + std::string(100000, 'x') + "\"}";
  auto stored = upload(cache.port(), id, "test.json", content);
  CHECK(stored.status == 200);
  CHECK(stored.body == R"({"status":"ok"})");
  auto download = http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken + "\r\n" + kJson);  // Content-Type ignored
  CHECK(download.status == 200);
  CHECK(download.body == content);
  CHECK(download.header("content-type") == "application/json");
  CHECK(download.header("content-disposition").find("filename=\"test.json\"") != std::string::npos);
  CHECK_FALSE(download.header("etag").empty());
  auto range = http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken + "\r\nRange: bytes=2-5");
  CHECK(range.status == 206);
  CHECK(range.body == content.substr(2, 4));

  CHECK(upload(cache.port(), id, "../../../etc/passwd", "replaced").status == 200);
  auto replaced = http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken);
  CHECK(replaced.body == "replaced");
  CHECK(replaced.header("content-disposition").find("filename=\"etc_passwd\"") != std::string::npos);
  CHECK(upload(cache.port(), id, "\xe6\x97\xa5\xe6\x9c\xac", "unicode name").status == 200);  // no 500

  auto deleted = http_request(cache.port(), "DELETE", "/v1/cache/" + id, "", kToken);
  CHECK(deleted.status == 200);
  CHECK(deleted.body == R"({"status":"ok"})");
  CHECK(http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken).status == 404);
  CHECK(http_request(cache.port(), "DELETE", "/v1/cache/" + id, "", kToken).status == 404);
}

TEST_CASE("file cache: another user's cache is 403, an unknown one 404", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken2);
  CHECK(upload(cache.port(), id, "mine.txt", "theirs", kToken2).status == 200);
  auto foreign_upload = upload(cache.port(), id, "x.txt", "nope");
  CHECK(foreign_upload.status == 403);
  CHECK(error_of(foreign_upload) == "You do not have access to that cache");
  CHECK(http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken).status == 403);
  CHECK(http_request(cache.port(), "DELETE", "/v1/cache/" + id, "", kToken).status == 403);
  CHECK(http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken2).body == "theirs");
  std::string unknown(128, 'a');
  CHECK(error_of(upload(cache.port(), unknown, "x.txt", "data")) == "Cache ID not found");
  CHECK(http_request(cache.port(), "GET", "/v1/cache/" + unknown, "", kToken).status == 404);
}

TEST_CASE("file cache: a missing file field or filename is 400", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port());
  auto wrong_field = http_request(cache.port(), "POST", "/v1/cache/" + id, multipart("filexx", "a.txt", "data"),
                                  kToken + "\r\n" + kMultipart);
  CHECK(wrong_field.status == 400);
  CHECK(error_of(wrong_field) == "File field missing");
  auto no_name = http_request(cache.port(), "POST", "/v1/cache/" + id, multipart("file", "", "data"), kToken + "\r\n" + kMultipart);
  CHECK(no_name.status == 400);
  CHECK(error_of(no_name) == "Filename missing");
}

TEST_CASE("file cache: a client that disconnects mid-upload leaves the previous file intact", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port());
  REQUIRE(upload(cache.port(), id, "v1.txt", "version one").status == 200);
  {
    RawConnection connection(cache.port());
    std::string body = multipart("file", "v2.txt", std::string(1000000, 'z'));
    connection.send("POST /v1/cache/" + id + " HTTP/1.1\r\nHost: x\r\n" + kToken + "\r\n" + kMultipart +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 400000));
    std::this_thread::sleep_for(200ms);
  }
  std::this_thread::sleep_for(300ms);
  CHECK(http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken).body == "version one");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(cache.server->data_dir() / "file_cache")) {
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  }
}

TEST_CASE("file cache: token lookups are cached for the auth service's cachefor", "[file_cache]") {
  FileCache cache;
  for (int i = 0; i < 5; ++i) new_cache_id(cache.port());
  // Two workers: each caches the token once.
  CHECK(json::parse(http_request(cache.port(), "GET", "/auth/api/V2/calls").body)["calls"].get<int>() <= 2);
}

TEST_CASE("file cache: the python client's URL layout under /cache", "[file_cache]") {
  FileCache cache;
  auto response = http_request(cache.port(), "POST", "/cache/v1/cache_id", R"({"client": true})", kToken + "\r\n" + kJson);
  CHECK(response.status == 200);
  std::string id = json::parse(response.body)["cache_id"];
  CHECK(http_request(cache.port(), "POST", "/cache/v1/cache/" + id, multipart("file", "data.txt", "from client"),
                     kToken + "\r\n" + kMultipart).status == 200);
  CHECK(http_request(cache.port(), "GET", "/cache/v1/cache/" + id, "", kToken).body == "from client");
}

TEST_CASE("file cache: the periodic job and depot admin expire-all remove expired entries", "[file_cache]") {
  auto data = depot::testing::make_temp_dir("depot-file-cache-");
  {
    FileCache cache({{"placeholder_lifetime", 1}, {"file_lifetime", 1}, {"expiry_interval", 1}});
    std::string id = new_cache_id(cache.port());
    CHECK(upload(cache.port(), id, "short.txt", "short-lived").status == 200);
    std::this_thread::sleep_for(2500ms);
    CHECK(http_request(cache.port(), "GET", "/v1/cache/" + id, "", kToken).status == 404);
  }
  {
    FileCache cache({{"placeholder_lifetime", 1}, {"file_lifetime", 1}, {"expiry_interval", 3600}}, data);
    for (int i = 0; i < 3; ++i) new_cache_id(cache.port());
  }
  std::this_thread::sleep_for(1500ms);
  std::ofstream(data / "depot.json") << json({{"services", {{{"name", "file_cache"}, {"mount", "/"}}}}}).dump();
  std::string command = std::string("cd ") + data.string() + " && " + DEPOT_BINARY + " admin --config depot.json --scripts " +
                        DEPOT_SOURCE_DIR "/scripts --data-dir " + data.string() + " expire-all 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  char line[256] = "";
  std::string output;
  while (fgets(line, sizeof line, pipe)) output += line;
  CHECK(pclose(pipe) == 0);
  CHECK(output == "Finished running. Total objects: 3. Removed 3 objects\n");
  std::filesystem::remove_all(data);
}

TEST_CASE("file cache: the original stress test — 1000 of each operation in parallel, all 200", "[file_cache][stress]") {
  FileCache cache;
  const int count = 1000;
  std::vector<std::string> ids(count);
  std::atomic<int> failures{0};
  auto in_parallel = [&](auto operation) {
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 32; ++t) {
      pool.emplace_back([&] {
        for (int i = next++; i < count; i = next++) {
          if (operation(i) != 200) ++failures;
        }
      });
    }
    for (auto& thread : pool) thread.join();
  };
  auto start = std::chrono::steady_clock::now();
  in_parallel([&](int i) {
    auto response = http_request(cache.port(), "POST", "/v1/cache_id", R"({"xyz": "stress-)" + std::to_string(i) + "\"}",
                                 kToken + "\r\n" + kJson);
    if (response.status == 200) ids[i] = json::parse(response.body)["cache_id"];
    return response.status;
  });
  in_parallel([&](int i) { return upload(cache.port(), ids[i], "test.json", "{}").status; });
  in_parallel([&](int i) { return http_request(cache.port(), "GET", "/v1/cache/" + ids[i], "", kToken + "\r\n" + kJson).status; });
  in_parallel([&](int i) { return http_request(cache.port(), "DELETE", "/v1/cache/" + ids[i], "", kToken).status; });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(failures == 0);
  WARN("stress test: 4000 requests in " << seconds << " s");
}
