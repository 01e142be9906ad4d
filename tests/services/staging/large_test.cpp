// Large copies: a 1 GiB local_copy (bytes equal, compared by digest; the process's memory does
// not grow with the file), its record's progress (bytes_done / bytes_total) watched while it
// runs, and the progress of a tree over the threshold.
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/services/staging/staging_fixture.hpp"

using namespace depot::testing::staging;
using namespace std::chrono_literals;

namespace {

constexpr off_t kGiB = 1 << 30;

// A 1 GiB file made quickly: sparse, with a random 64 KiB block every 64 MiB so that a copy that
// drops or misplaces data shows in the digest.
void make_large_file(const stdfs::path& path) {
  stdfs::create_directories(path.parent_path());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, kGiB) == 0);
  std::string block(64 * 1024, '\0');
  for (off_t offset = 0; offset < kGiB; offset += 64 << 20) {
    randombytes_buf(block.data(), block.size());
    REQUIRE(::pwrite(fd, block.data(), block.size(), offset + 12345) ==
            static_cast<ssize_t>(block.size()));
  }
  ::close(fd);
}

std::string digest_of(const stdfs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<cannot open " + path.string() + ">";
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, 32);
  std::vector<unsigned char> buffer(1 << 20);
  for (ssize_t got; (got = ::read(fd, buffer.data(), buffer.size())) > 0;) {
    crypto_generichash_update(&state, buffer.data(), static_cast<size_t>(got));
  }
  ::close(fd);
  unsigned char digest[32];
  crypto_generichash_final(&state, digest, sizeof digest);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

}  // namespace

TEST_CASE("staging large: a 1 GiB local_copy, equal bytes, progress while it runs",
          "[staging][large]") {
  Staging staging(json{{"PROGRESS_INTERVAL", 0.02}});
  auto big = staging.source() / "big/one.bin";
  make_large_file(big);
  long rss_before = resident_kib();

  HttpResponse response;
  std::atomic<bool> done{false};
  std::thread client([&] {
    response = staging.stage("local_copy", "michele", "big/one.bin", "big.bin");
    done = true;
  });
  std::vector<json> seen;
  while (!done) {
    auto running = staging.records("?status=running");
    if (!running.empty() && running[0].contains("bytes_total")) seen.push_back(running[0]);
    std::this_thread::sleep_for(5ms);
  }
  client.join();
  check_success(response, "Data staged for user michele with method local_copy");
  long rss_after = resident_kib();

  auto copy = staging.target() / "michele/big.bin";
  CHECK(stdfs::file_size(copy) == static_cast<uintmax_t>(kGiB));
  CHECK(digest_of(copy) == digest_of(big));
  CHECK(mode_of(copy) == 0400);
  CHECK(rss_after - rss_before < 64 * 1024);  // the data moved in the kernel, not through Lua

  REQUIRE_FALSE(seen.empty());
  double last = 0;
  for (const auto& record : seen) {
    CHECK(record["bytes_total"] == kGiB);
    double now = record["bytes_done"];
    CHECK(now >= last);
    CHECK(now <= kGiB);
    last = now;
  }
  auto record = staging.records("?limit=1")[0];
  CHECK(record["status"] == "success");
  CHECK(record["bytes"] == kGiB);
  CHECK(record["bytes_total"] == kGiB);
  CHECK(record["bytes_done"] == kGiB);
  auto one =
      json::parse(staging.get("/stage-data/records/" + record["id"].get<std::string>()).body);
  CHECK(one["bytes_done"] == kGiB);
}

// Small (5 kB), so not [large]: the sanitizer suite, which leaves [large] out, runs it.
TEST_CASE("staging large: a tree over the threshold records its progress", "[staging]") {
  Staging staging(json{{"PROGRESS_THRESHOLD_BYTES", 2000}});
  for (int i = 0; i < 50; ++i) {
    write_file(
        staging.source() / "many" / ("d" + std::to_string(i % 5)) / ("f" + std::to_string(i)),
        std::string(100, 'a' + i % 26));
  }
  check_success(staging.stage("local_copy", "michele", "many", "many"),
                "Data staged for user michele with method local_copy");
  auto record = staging.records("?limit=1")[0];
  CHECK(record["bytes_total"] == 5000);
  CHECK(record["bytes_done"] == 5000);
  CHECK(record["bytes"] == 5000);
  CHECK(read_file(staging.target() / "michele/many/d3/f8") == std::string(100, 'a' + 8));
  // Below the threshold there is no progress to report.
  check_success(staging.stage("local_copy", "michele", "many/d0", "small"),
                "Data staged for user michele with method local_copy");
  CHECK_FALSE(staging.records("?limit=1")[0].contains("bytes_total"));
}
