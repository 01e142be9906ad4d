// The original's stress test (src/test/test_server_stress.py, test_many_connections) as a
// routine, run against one server (stress_test.cpp) and against replicas behind a balancer
// (tests/services/scale_out/): `count` cache ids, uploads, downloads and deletes, each batch in
// parallel through a pool of client threads. Like the original, most uploads are empty (it shared
// one open file among all its requests) and the downloads send Content-Type too.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "tests/services/file_cache/file_cache_fixture.hpp"

namespace depot::testing::file_cache {

// How many answers of each batch were 200 (a download counts only with the right body).
struct StressOutcome {
  int ids = 0;
  int uploads = 0;
  int downloads = 0;
  int deletes = 0;
  double seconds = 0;
};

inline StressOutcome stress(uint16_t port, int count, int pool_size) {
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
    return static_cast<int>(std::count(statuses.begin(), statuses.end(), 200));
  };
  StressOutcome outcome;
  auto started = std::chrono::steady_clock::now();
  outcome.ids = in_parallel([&](int i) {
    auto response = post_cache_id(
        port, json{{"xyz", "stress-" + std::to_string(i) + "-" + std::to_string(getpid())}}.dump());
    if (response.status == 200) ids[i] = json::parse(response.body)["cache_id"];
    return response.status;
  });
  outcome.uploads = in_parallel(
      [&](int i) { return upload(port, ids[i], "test.json", i % 10 == 0 ? "{}" : "").status; });
  outcome.downloads = in_parallel([&](int i) {
    auto response = download(port, ids[i], kToken + "\r\n" + kJson);
    return response.body == (i % 10 == 0 ? "{}" : "") ? response.status : -response.status;
  });
  outcome.deletes = in_parallel([&](int i) { return remove(port, ids[i]).status; });
  outcome.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return outcome;
}

}  // namespace depot::testing::file_cache
