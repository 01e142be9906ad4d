// The original's stress test against one server: 1000 of each operation, all 200 (stress.hpp).
#include "tests/services/file_cache/stress.hpp"

#include <catch2/catch.hpp>

using namespace depot::testing::file_cache;

TEST_CASE("file cache stress: 1000 of each operation in parallel, all 200",
          "[file_cache][stress]") {
  FileCache cache;
  const int count = 1000;
  const int pool_size = 32;
  StressOutcome outcome = stress(cache.port(), count, pool_size);
  CHECK(outcome.ids == count);
  CHECK(outcome.uploads == count);
  CHECK(outcome.downloads == count);
  CHECK(outcome.deletes == count);
  WARN("file cache stress: 4000 requests through "
       << pool_size << " client threads in " << outcome.seconds << " s (" << cache.auth_calls()
       << " auth calls)");
}
