// Statements to a PostgreSQL server for the bindings (kv on PostgreSQL): on a worker, through a
// small pool of asynchronous libpq connections driven by that worker's epoll set, so a query never
// blocks the reactor thread; with no worker (load time, `depot admin`, unit tests), on a blocking
// connection of the calling thread.
//
// A session is one connection for a sequence of statements (a transaction spans them). Sessions
// are continuation-passing: each statement's `done` runs once it ended, and sends the next one.
// A dropped connection fails the statement in flight with a clear error ("connection lost") and
// is opened again for the next session; nothing is retried behind the caller's back, because a
// statement whose answer was lost may or may not have been committed.
//
// Never blocks a reactor thread; never runs Lua (callers resume their tasks themselves).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace depot {

class Worker;

struct PostgresStatement {
  std::string sql;
  // Sent in binary format: bytea and text parameters are their raw bytes.
  std::vector<std::string> parameters;
};

struct PostgresResult {
  std::string error;     // empty on success
  std::string sqlstate;  // the server's code for an error ("40001": a serialization failure)
  // Rows in binary format: bytea as its bytes, bigint as 8 big-endian bytes; nullopt for NULL.
  std::vector<std::vector<std::optional<std::string>>> rows;
  uint64_t affected = 0;  // rows an INSERT/UPDATE/DELETE touched
  bool ok() const { return error.empty(); }
};

using PostgresCallback = std::function<void(PostgresResult)>;

class PostgresSession {
 public:
  virtual ~PostgresSession() = default;
  // Runs `statement`; `done` runs when it ended: at once on a blocking session, from the worker's
  // epoll otherwise. One statement at a time: send the next from `done`.
  virtual void query(PostgresStatement statement, PostgresCallback done) = 0;
};

// Where to connect, and what every new connection runs first (CREATE TABLE IF NOT EXISTS ...).
struct PostgresDatabase {
  std::string url;
  std::vector<std::string> setup;
};

// Calls `work` with a session on `database`: from `worker`'s pool (once a connection is free;
// later, from its epoll) or, when `worker` is null, at once on this thread's blocking connection.
// The session goes back to the pool when the last copy of its pointer is dropped. A failure to
// connect reaches `work` as a session whose statements all fail with the reason.
void with_postgres_session(Worker* worker, const PostgresDatabase& database,
                           std::function<void(std::shared_ptr<PostgresSession>)> work);

// The 8 big-endian bytes of a bigint column as a number.
int64_t postgres_bigint(const std::string& binary);

}  // namespace depot
