// The original's stress test (src/test/test_server_stress.py, test_many_connections) as a test:
// 1000 cache ids, 1000 uploads, 1000 downloads and 1000 deletes, each batch in parallel through a
// pool of 32 client threads, every answer 200. Like the original, most uploads are empty (it
// shared one open file among all its requests) and the downloads send Content-Type too.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/services/file_cache/file_cache_fixture.hpp"

using namespace depot::testing::file_cache;
using depot::testing::http_request;

TEST_CASE("file cache stress: 1000 of each operation in parallel, all 200",
          "[file_cache][stress]") {
  FileCache cache;
  const int count = 1000;
  const int pool_size = 32;
  std::vector<std::string> ids(count);
  std::vector<int> statuses(count);
  auto in_parallel = [&](const std::function<int(int)>& operation) {
    std::atomic<int> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < pool_size; ++t) {
      pool.emplace_back([&] {
        for (int i = next++; i < count; i = next++) statuses[i] = operation(i);
      });
    }
    for (auto& thread : pool) thread.join();
    return std::count(statuses.begin(), statuses.end(), 200);
  };
  auto started = std::chrono::steady_clock::now();
  CHECK(in_parallel([&](int i) {
          auto response = post_cache_id(
              cache.port(),
              json{{"xyz", "stress-" + std::to_string(i) + "-" + std::to_string(getpid())}}.dump());
          if (response.status == 200) ids[i] = json::parse(response.body)["cache_id"];
          return response.status;
        }) == count);
  CHECK(in_parallel([&](int i) {
          return upload(cache.port(), ids[i], "test.json", i % 10 == 0 ? "{}" : "").status;
        }) == count);
  CHECK(in_parallel([&](int i) {
          auto response = download(cache.port(), ids[i], kToken + "\r\n" + kJson);
          return response.body == (i % 10 == 0 ? "{}" : "") ? response.status : -response.status;
        }) == count);
  CHECK(in_parallel([&](int i) { return remove(cache.port(), ids[i]).status; }) == count);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  WARN("file cache stress: 4000 requests through " << pool_size << " client threads in " << seconds
                                                   << " s (" << cache.auth_calls()
                                                   << " auth calls)");
}
