// File cache expiry with short configured lifetimes: the periodic job, downloads renewing a file,
// and `depot admin expire-all` (also while a server runs on the same data dir), which also removes
// what interrupted uploads and crashes leave behind.
#include <sys/stat.h>
#include <utime.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/services/file_cache/file_cache_fixture.hpp"
#include "tests/support/depot_process.hpp"

using namespace depot::testing::file_cache;
using namespace std::chrono_literals;

namespace {
long expiration_of(FileCache& cache, const std::string& body) {
  return std::stol(json::parse(post_cache_id(cache.port(), body).body)["metadata"]["expiration"]
                       .get<std::string>());
}

void write_file(const std::filesystem::path& path, const std::string& content, int age_seconds) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
  struct utimbuf times;
  times.actime = times.modtime = time(nullptr) - age_seconds;
  utime(path.c_str(), &times);
}
}  // namespace

TEST_CASE("file cache expiry: the periodic job removes expired entries and their files",
          "[file_cache][fs_layout]") {
  FileCache cache(
      json{{"placeholder_lifetime", 1}, {"file_lifetime", 1}, {"expiry_interval", 0.5}});
  std::string with_file = new_cache_id(cache.port(), kToken, "expires with file");
  std::string placeholder = new_cache_id(cache.port(), kToken, "expires as placeholder");
  REQUIRE(upload(cache.port(), with_file, "short.txt", "short-lived").status == 200);
  REQUIRE(std::filesystem::exists(cache.stored_file(with_file)));
  std::this_thread::sleep_for(2600ms);
  CHECK(error_of(download(cache.port(), with_file)) == "Cache ID not found");
  CHECK(remove(cache.port(), placeholder).status == 404);
  CHECK_FALSE(std::filesystem::exists(cache.stored_file(with_file)));
}

TEST_CASE("file cache expiry: a download renews a file for another file_lifetime", "[file_cache]") {
  FileCache cache(json{{"file_lifetime", 1000}});
  std::string body = unique_body("renewed");
  std::string id = json::parse(post_cache_id(cache.port(), body).body)["cache_id"];
  REQUIRE(upload(cache.port(), id, "kept.txt", "kept").status == 200);
  long uploaded = expiration_of(cache, body);
  CHECK(std::abs(uploaded - (time(nullptr) + 1000)) <= 2);
  std::this_thread::sleep_for(1100ms);
  CHECK(download(cache.port(), id).status == 200);
  CHECK(expiration_of(cache, body) > uploaded);
  // A placeholder is not renewed by the failed download of its missing file.
  std::string placeholder_body = unique_body("placeholder not renewed");
  post_cache_id(cache.port(), placeholder_body);
  long created = expiration_of(cache, placeholder_body);
  std::this_thread::sleep_for(1100ms);
  CHECK(download(cache.port(),
                 json::parse(post_cache_id(cache.port(), placeholder_body).body)["cache_id"])
            .status == 404);
  CHECK(expiration_of(cache, placeholder_body) == created);
}

TEST_CASE("file cache expiry: depot admin expire-all, also while a server runs",
          "[file_cache][fs_layout]") {
  auto data = depot::testing::make_temp_dir("depot-file-cache-admin-");
  {
    FileCache cache(json{{"placeholder_lifetime", 1}, {"file_lifetime", 1}}, data);
    for (int i = 0; i < 3; ++i) new_cache_id(cache.port(), kToken, "short");
    REQUIRE(upload(cache.port(), new_cache_id(cache.port(), kToken, "short file"), "x.txt", "x")
                .status == 200);
  }
  FileCache cache(json::object(), data);
  std::string kept = new_cache_id(cache.port(), kToken, "long");
  REQUIRE(upload(cache.port(), kept, "kept.txt", "kept").status == 200);
  // What a crash or a vanished client may leave: an old temporary file, an old file without an
  // entry; and a recent one of each, which may still be an upload in progress.
  auto root = data / "file_cache";
  std::string orphan_id(128, 'e');
  std::string fresh_id(128, 'f');
  write_file(root / "ee" / ("." + orphan_id + ".tmp.a1b2c3"), "partial", 7200);
  write_file(root / "ee" / orphan_id, "orphan", 7200);
  write_file(root / "ff" / ("." + fresh_id + ".tmp.d4e5f6"), "partial", 10);
  write_file(root / "ff" / fresh_id, "recent", 10);
  std::this_thread::sleep_for(1100ms);

  CHECK(run_admin(data, "expire-all") ==
        "Checking the expiration of all stored objects..\n... Finished running. Total objects: 5. "
        "Removed 4 objects\n");
  CHECK_FALSE(std::filesystem::exists(root / "ee" / ("." + orphan_id + ".tmp.a1b2c3")));
  CHECK_FALSE(std::filesystem::exists(root / "ee" / orphan_id));
  CHECK(std::filesystem::exists(root / "ff" / ("." + fresh_id + ".tmp.d4e5f6")));
  CHECK(std::filesystem::exists(root / "ff" / fresh_id));
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root))
    files += entry.is_regular_file();
  CHECK(files == 3);  // the kept file and the two recent ones

  // The server went on serving and writing meanwhile; a second run finds nothing to remove.
  CHECK(download(cache.port(), kept).body == "kept");
  CHECK(upload(cache.port(), kept, "kept2.txt", "kept 2").status == 200);
  // Forking while the server closes a connection can leave that connection's epoll registration
  // alive in the child's copy of the descriptor table (an engine issue, reported): let the
  // server finish closing this test's connections first.
  std::this_thread::sleep_for(300ms);
  CHECK(run_admin(data, "expire-all").find("Total objects: 1. Removed 0 objects") !=
        std::string::npos);
  // Its progress goes to stderr: plain lines here, where stderr is no terminal.
  auto progress = depot::testing::run_depot(
      data, {"admin", "--config", "admin.json", "--scripts", DEPOT_SOURCE_DIR "/scripts",
             "--data-dir", ".", "--log-level", "error", "expire-all"});
  CHECK(progress.status == 0);
  CHECK_THAT(
      progress.err,
      Catch::StartsWith("expiry: entries checked: 1/1 (100%)\nexpiry: file directories swept: 1/"));
  CHECK_THAT(progress.err, Catch::EndsWith("(100%)\n"));
  CHECK(download(cache.port(), kept).body == "kept 2");
  std::filesystem::remove_all(data);
}
