// A throwaway PostgreSQL server for tests (see postgres_server.hpp).
#include "tests/support/postgres_server.hpp"

#include <libpq-fe.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "tests/support/test_server.hpp"

namespace depot::testing {

namespace {

const std::string kScript = std::string(DEPOT_SOURCE_DIR) + "/tests/support/postgres.sh";

// Runs postgres.sh with `command` on `directory`: its stdout, or throws with its stderr.
std::string run_script(const std::string& command, const std::filesystem::path& directory) {
  std::string line = kScript + " " + command + " '" + directory.string() + "' 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(line.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("postgres.sh: cannot run " + kScript);
  std::string output;
  std::array<char, 4096> buffer;
  size_t count;
  while ((count = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) {
    output.append(buffer.data(), count);
  }
  int status = pclose(pipe.release());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("postgres.sh " + command + " failed: " + output);
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

}  // namespace

PostgresServer::PostgresServer() : directory_(make_temp_dir("depot-postgres-")) {
  try {
    url_ = run_script("start", directory_);
  } catch (...) {
    std::filesystem::remove_all(directory_);
    throw;
  }
}

PostgresServer::~PostgresServer() {
  try {
    run_script("stop", directory_);
  } catch (const std::exception&) {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }
}

void PostgresServer::execute(const std::string& sql) const {
  postgres_execute(url_, sql);
}

void postgres_execute(const std::string& url, const std::string& sql) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> connection(PQconnectdb(url.c_str()), PQfinish);
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("postgres: ") + PQerrorMessage(connection.get()));
  }
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(connection.get(), sql.c_str()),
                                                        PQclear);
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error("postgres: " + sql + ": " + PQerrorMessage(connection.get()));
  }
}

std::string PostgresServer::create_database() {
  std::string name = "test_" + std::to_string(++databases_);
  execute("CREATE DATABASE " + name);
  std::string url = url_;
  url.replace(url.find("/postgres?"), 10, "/" + name + "?");
  return url;
}

bool PostgresServer::available() {
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ignored)) {
    if (std::filesystem::exists(entry.path() / "bin" / "pg_ctl")) return true;
  }
  return false;
}

PostgresServer& PostgresServer::shared() {
  static PostgresServer server;
  return server;
}

}  // namespace depot::testing
