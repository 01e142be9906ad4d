// A real, throwaway PostgreSQL server for tests: initdb'd in a fresh temporary directory (as the
// unprivileged `postgres` user when the tests run as root), listening only on a unix socket in
// that directory; stopped and removed by the destructor. The recipe is tests/support/postgres.sh,
// which bench scripts use directly.
#pragma once

#include <filesystem>
#include <string>

namespace depot::testing {

class PostgresServer {
 public:
  // Starts a server (a few seconds: initdb dominates); throws std::runtime_error with the
  // server's own complaint if it cannot.
  PostgresServer();
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The libpq URL of its `postgres` database, as user `depot` (a superuser, trust auth).
  const std::string& url() const { return url_; }
  const std::filesystem::path& directory() const { return directory_; }
  // Creates a new empty database and returns its URL: tests that share one server stay apart.
  std::string create_database();
  // Runs one SQL statement on its `postgres` database (see postgres_execute).
  void execute(const std::string& sql) const;

  // Whether PostgreSQL's server binaries are installed (tests skip themselves if not).
  static bool available();
  // One server for the whole test process, started on first use, stopped at exit: each CTest
  // test is its own process, so this is one start per test case however many sections it has.
  static PostgresServer& shared();

 private:
  std::filesystem::path directory_;
  std::string url_;
  int databases_ = 0;
};

// Runs one SQL statement on the database at `url` over a connection of its own (any result is
// dropped); throws std::runtime_error with the server's message on an error.
void postgres_execute(const std::string& url, const std::string& sql);

}  // namespace depot::testing
