// The PostgreSQL test harness itself (tests/support/postgres_server.*): a server that starts,
// answers SQL, keeps databases apart, and leaves nothing behind.
#include "tests/support/postgres_server.hpp"

#include <catch2/catch.hpp>
#include <filesystem>

using depot::testing::PostgresServer;

TEST_CASE("postgres harness starts a server, makes databases and removes it all", "[postgres]") {
  if (!PostgresServer::available()) {
    WARN("PostgreSQL server binaries missing (Debian's postgresql): skipped");
    return;
  }
  std::filesystem::path directory;
  {
    PostgresServer server;
    directory = server.directory();
    CHECK(server.url().rfind("postgresql://", 0) == 0);
    server.execute("CREATE TABLE t (k bytea PRIMARY KEY)");
    std::string first = server.create_database();
    std::string second = server.create_database();
    CHECK(first != second);
    CHECK_THROWS_WITH(server.execute("SELECT nonsense FROM nowhere"), Catch::Contains("nowhere"));
    CHECK(std::filesystem::exists(directory / "data"));
  }
  CHECK_FALSE(std::filesystem::exists(directory));
}
