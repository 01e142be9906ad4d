// The file cache's uploads and downloads beyond the original's tests: download headers, ranges,
// ETags, replacement, unusual names, the defects fixed (Content-Type with a charset, non-object
// bodies, Content-Type on GET), clients that vanish mid-upload, the URL prefixes clients use, and
// the stored digest.
#include <sodium.h>
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <thread>

#include "bindings/lmdb_env.hpp"
#include "tests/services/file_cache/file_cache_fixture.hpp"

using namespace depot::testing::file_cache;
using depot::testing::http_request;
using depot::testing::RawConnection;
using namespace std::chrono_literals;

namespace {
// Python's json.dumps(value, sort_keys=True) of a flat object of ASCII keys and simple values.
std::string python_canonical(const json& flat_object) {
  std::string text = "{";
  for (const auto& [key, value] : flat_object.items()) {  // nlohmann keeps keys sorted bytewise
    text += (text.size() > 1 ? ", \"" : "\"") + key + "\": " + value.dump();
  }
  return text + "}";
}
}  // namespace

TEST_CASE("file cache: cache ids are the original's and re-generating one returns its entry",
          "[file_cache]") {
  FileCache cache;
  std::string body = unique_body("ids");
  auto first = post_cache_id(cache.port(), body);
  REQUIRE(first.status == 200);
  auto entry = json::parse(first.body);
  std::string token_id = cache.auth_url() + ":username";
  CHECK(entry["cache_id"] == blake2b_hex(token_id + "\n" + python_canonical(json::parse(body))));
  CHECK(entry["metadata"]["token_id"] == token_id);
  long expiration = std::stol(entry["metadata"]["expiration"].get<std::string>());
  CHECK(std::abs(expiration - (time(nullptr) + 7 * 24 * 3600)) <= 2);

  REQUIRE(upload(cache.port(), entry["cache_id"], "result.txt", "cached").status == 200);
  auto again = json::parse(post_cache_id(cache.port(), body).body);
  CHECK(again["cache_id"] == entry["cache_id"]);
  CHECK(again["metadata"]["filename"] == "result.txt");
  expiration = std::stol(again["metadata"]["expiration"].get<std::string>());
  CHECK(std::abs(expiration - (time(nullptr) + 30 * 24 * 3600)) <= 2);

  // The other fixture user gets another id for the same data.
  auto other = json::parse(post_cache_id(cache.port(), body, kToken2).body);
  CHECK(other["cache_id"] ==
        blake2b_hex(cache.auth_url() + ":username2\n" + python_canonical(json::parse(body))));
}

TEST_CASE("file cache: Content-Type with parameters is JSON, and a non-object body is 400",
          "[file_cache]") {
  FileCache cache;
  std::string body = unique_body("charset");
  auto plain = post_cache_id(cache.port(), body);
  for (const char* type :
       {"application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"}) {
    auto response = http_request(cache.port(), "POST", "/v1/cache_id", body,
                                 kToken + "\r\nContent-Type: " + type);
    INFO(type);
    CHECK(response.status == 200);
    CHECK(json::parse(response.body)["cache_id"] == json::parse(plain.body)["cache_id"]);
  }
  CHECK(error_of(http_request(cache.port(), "POST", "/v1/cache_id", body,
                              kToken + "\r\nContent-Type: application/jsonx")) ==
        "Invalid Content-Type: 'application/jsonx'. Must be: 'application/json'.");
  for (const char* shape : {"{}", "[]", "\"x\"", "1", "null", "[{\"a\": 1}]"}) {
    auto response = post_cache_id(cache.port(), shape);
    INFO(shape);
    check_error(response, 400, "Must provide non-empty JSON data for the cache identifier");
  }
}

TEST_CASE("file cache: a download carries the stored name, its type, Range and ETag",
          "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "headers");
  std::string content = R"({"bytes": ")" + std::string(300000, 'x') + "\"}";
  REQUIRE(upload(cache.port(), id, "test.json", content).status == 200);

  // A Content-Type on a GET is ignored (the python client sends application/json).
  auto response = download(cache.port(), id, kToken + "\r\n" + kJson);
  CHECK(response.status == 200);
  CHECK(response.body == content);
  CHECK(response.header("content-type") == "application/json");
  CHECK(response.header("content-length") == std::to_string(content.size()));
  CHECK(response.header("content-disposition").find("attachment; filename=\"test.json\"") == 0);
  std::string etag = response.header("etag");
  CHECK_FALSE(etag.empty());
  CHECK_FALSE(response.header("last-modified").empty());

  auto range = download(cache.port(), id, kToken + "\r\nRange: bytes=2-9");
  CHECK(range.status == 206);
  CHECK(range.body == content.substr(2, 8));
  CHECK(range.header("content-range") == "bytes 2-9/" + std::to_string(content.size()));
  CHECK(download(cache.port(), id, kToken + "\r\nIf-None-Match: " + etag).status == 304);
  auto head = http_request(cache.port(), "HEAD", "/v1/cache/" + id, "", kToken);
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == std::to_string(content.size()));
  CHECK(head.body.empty());

  REQUIRE(upload(cache.port(), id, "notes.txt", "text").status == 200);
  CHECK(download(cache.port(), id).header("content-type") == "text/plain; charset=utf-8");
  REQUIRE(upload(cache.port(), id, "blob.unknownextension", "bytes").status == 200);
  CHECK(download(cache.port(), id).header("content-type") == "application/octet-stream");
}

TEST_CASE("file cache: an upload replaces the file and its name", "[file_cache][fs_layout]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "replace");
  REQUIRE(upload(cache.port(), id, "first.txt", "first version, longer than the second").status ==
          200);
  REQUIRE(upload(cache.port(), id, "second.bin", "second").status == 200);
  auto response = download(cache.port(), id);
  CHECK(response.body == "second");
  CHECK(response.header("content-disposition").find("filename=\"second.bin\"") !=
        std::string::npos);
  // Nothing but the file itself is left in its directory.
  auto directory = cache.stored_file(id).parent_path();
  CHECK(std::distance(std::filesystem::directory_iterator(directory),
                      std::filesystem::directory_iterator()) == 1);
}

// The stored entry as the service wrote it (the kv value: 'j' and its JSON).
static json stored_entry(FileCache& cache, const std::string& cache_id) {
  auto env = depot::LmdbEnv::open(cache.data_dir() / "kv", size_t{1} << 30);
  MDB_dbi dbi = env->database("file_cache");
  std::string value;
  env->read([&](MDB_txn* txn) {
    MDB_val key{cache_id.size(), const_cast<char*>(cache_id.data())}, found;
    if (mdb_get(txn, dbi, &key, &found) == MDB_SUCCESS)
      value.assign(static_cast<char*>(found.mv_data), found.mv_size);
  });
  REQUIRE(value.size() > 1);
  return json::parse(value.substr(1));
}

TEST_CASE("file cache: the stored digest is the XXH3-128 of the bytes, an older BLAKE2b one goes",
          "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "digest");
  std::string bytes = unique_body("digest bytes") + std::string(300000, 'z');
  REQUIRE(upload(cache.port(), id, "d.bin", bytes).status == 200);
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(bytes.data(), bytes.size()));
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, canonical.digest, sizeof canonical.digest);
  json entry = stored_entry(cache, id);
  CHECK(entry["xxh128"] == hex);
  CHECK(entry["size"] == bytes.size());
  CHECK_FALSE(entry.contains("blake2b"));

  // An entry uploaded by the version that stored BLAKE2b loses it at its next upload.
  auto env = depot::LmdbEnv::open(cache.data_dir() / "kv", size_t{1} << 30);
  MDB_dbi dbi = env->database("file_cache");
  json legacy = entry;
  legacy.erase("xxh128");
  legacy["blake2b"] = std::string(128, 'a');
  std::string value = "j" + legacy.dump();
  env->write([&](depot::LmdbWriting& writing) {
    MDB_val key{id.size(), id.data()}, data{value.size(), value.data()};
    REQUIRE(mdb_put(writing.txn(), dbi, &key, &data, 0) == MDB_SUCCESS);
  });
  REQUIRE(upload(cache.port(), id, "d.bin", "again").status == 200);
  entry = stored_entry(cache, id);
  CHECK_FALSE(entry.contains("blake2b"));
  CHECK(entry["size"] == 5);
  CHECK(download(cache.port(), id).body == "again");
}

TEST_CASE("file cache: unusual file names are sanitised, never a 500", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "names");
  auto stored_name = [&](const std::string& filename) {
    auto response = upload(cache.port(), id, filename, "content of " + filename);
    if (response.status != 200) return "<upload answered " + std::to_string(response.status) + ">";
    std::string disposition = download(cache.port(), id).header("content-disposition");
    size_t start = disposition.find("filename=\"") + 10;
    return disposition.substr(start, disposition.find('"', start) - start);
  };
  CHECK(stored_name("../../../etc/passwd") == "etc_passwd");
  CHECK(stored_name("My cool movie.mov") == "My_cool_movie.mov");
  CHECK(stored_name("i contain cool \xc3\xbcml\xc3\xa4uts.txt") == "i_contain_cool_umlauts.txt");
  CHECK(stored_name("\xe6\x97\xa5\xe6\x9c\xac") == "file");
  CHECK(stored_name("...") == "file");
  // A full Windows path, its backslashes escaped as a quoted string needs (werkzeug unescaped
  // "\\\\" too, and then kept the last part).
  CHECK(stored_name("C:\\\\Users\\\\me\\\\report final.txt") == "report_final.txt");
  CHECK(stored_name(std::string(2000, 'n') + ".txt") == std::string(2000, 'n') + ".txt");
  // The original could not serve a file called "placeholder"; Depot keeps "has a file" apart.
  CHECK(stored_name("placeholder") == "placeholder");
  CHECK(download(cache.port(), id).body == "content of placeholder");

  auto no_name = http_request(cache.port(), "POST", "/v1/cache/" + id,
                              multipart("file", "", "data"), kToken + "\r\n" + kMultipart);
  check_error(no_name, 400, "Filename missing");
  // A "file" field that is no file (no filename parameter) is a form field, as for werkzeug.
  std::string field = "--" + kBoundary +
                      "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nvalue\r\n--" +
                      kBoundary + "--\r\n";
  CHECK(error_of(http_request(cache.port(), "POST", "/v1/cache/" + id, field,
                              kToken + "\r\n" + kMultipart)) == "File field missing");
  // Not multipart at all.
  CHECK(error_of(http_request(cache.port(), "POST", "/v1/cache/" + id, "{}",
                              kToken + "\r\n" + kJson)) == "File field missing");
  // Other parts before the file are skipped.
  std::string two_parts =
      "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" +
      std::string(100000, 'n') + "\r\n" + multipart("file", "second.txt", "the file");
  REQUIRE(
      http_request(cache.port(), "POST", "/v1/cache/" + id, two_parts, kToken + "\r\n" + kMultipart)
          .status == 200);
  CHECK(download(cache.port(), id).body == "the file");
  // A malformed multipart body is the client's error, not the server's.
  auto malformed = http_request(cache.port(), "POST", "/v1/cache/" + id,
                                "--" + kBoundary + "\r\nno end", kToken + "\r\n" + kMultipart);
  CHECK(malformed.status == 400);
}

TEST_CASE("file cache: max_upload_bytes refuses a larger file with 413 and keeps the previous one",
          "[file_cache]") {
  FileCache cache(json{{"max_upload_bytes", 100000}});
  std::string id = new_cache_id(cache.port(), kToken, "limit");
  std::string exact(100000, 'e');
  REQUIRE(upload(cache.port(), id, "exact.bin", exact).status == 200);
  check_error(upload(cache.port(), id, "over.bin", std::string(100001, 'o')), 413,
              "File too large: the limit is 100000 bytes");
  auto response = download(cache.port(), id);
  CHECK(response.body == exact);
  CHECK(response.header("content-disposition").find("filename=\"exact.bin\"") != std::string::npos);
}

TEST_CASE("file cache: a placeholder has no file to download", "[file_cache]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "placeholder");
  auto response = download(cache.port(), id);
  check_error(response, 404, "Cache ID not found");
  CHECK(remove(cache.port(), id).status == 200);  // a placeholder can be deleted
  CHECK(remove(cache.port(), id).status == 404);
}

TEST_CASE("file cache: a client that disconnects mid-upload leaves the previous file intact",
          "[file_cache][fs_layout]") {
  FileCache cache;
  std::string id = new_cache_id(cache.port(), kToken, "disconnect");
  REQUIRE(upload(cache.port(), id, "v1.txt", "version one").status == 200);
  {
    RawConnection connection(cache.port());
    std::string body = multipart("file", "v2.txt", std::string(4000000, 'z'));
    connection.send("POST /v1/cache/" + id + " HTTP/1.1\r\nHost: x\r\n" + kToken + "\r\n" +
                    kMultipart + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                    body.substr(0, 2500000));
    std::this_thread::sleep_for(300ms);  // the upload is under way: a temporary file exists
  }
  auto response = download(cache.port(), id);
  CHECK(response.body == "version one");
  CHECK(response.header("content-disposition").find("v1.txt") != std::string::npos);
  bool temporary_left = true;
  for (int i = 0; i < 50 && temporary_left; ++i) {
    temporary_left = false;
    for (const auto& entry :
         std::filesystem::directory_iterator(cache.stored_file(id).parent_path())) {
      if (entry.path().filename().string().find(".tmp.") != std::string::npos)
        temporary_left = true;
    }
    if (temporary_left) std::this_thread::sleep_for(20ms);
  }
  CHECK_FALSE(temporary_left);
}

TEST_CASE("file cache: the python client's URL layouts under /cache and /services/cache",
          "[file_cache]") {
  FileCache cache;
  for (const std::string prefix : {"/cache", "/services/cache"}) {
    INFO(prefix);
    CHECK(json::parse(http_request(cache.port(), "GET", prefix + "/v1").body).contains("routes"));
    CHECK(json::parse(http_request(cache.port(), "GET", prefix + "/").body).contains("endpoints"));
    auto created = post_cache_id(cache.port(), unique_body("client" + prefix), kToken, prefix);
    REQUIRE(created.status == 200);
    std::string id = json::parse(created.body)["cache_id"];
    // KBaseCacheClient.upload_cache(string=...) uploads as data.txt
    CHECK(upload(cache.port(), id, "data.txt", "from client", kToken, prefix).status == 200);
    auto downloaded =
        http_request(cache.port(), "GET", prefix + "/v1/cache/" + id, "", kToken + "\r\n" + kJson);
    CHECK(downloaded.status == 200);
    CHECK(downloaded.body == "from client");
    CHECK(http_request(cache.port(), "DELETE", prefix + "/v1/cache/" + id, "", kToken).status ==
          200);
    auto gone = http_request(cache.port(), "DELETE", prefix + "/v1/cache/" + id, "", kToken);
    CHECK(error_of(gone) == "Cache ID not found");  // what the client's CacheNonexistent looks for
    CHECK(json::parse(http_request(cache.port(), "GET", prefix + "/nothing").body) ==
          json{{"status", "error"}});
  }
}
