// PostgreSQL sessions: a per-worker pool of asynchronous libpq connections on the worker's epoll
// set, and blocking connections for threads without a worker (see postgres_connection.hpp).
#include "bindings/postgres_connection.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

#include "engine/event_source.hpp"
#include "engine/log.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

// Enough for the handful of tasks a worker runs at once; each replica's workers multiply it, and
// a server's max_connections bounds the product.
constexpr size_t kPoolSize = 4;
const char kExtensionKey = 0;  // its address keys the pools among the worker's extensions

using ConnectionOwner = std::unique_ptr<PGconn, void (*)(PGconn*)>;

// The server's notices ("relation depot_kv already exists, skipping") are not for stderr.
void ignore_notice(void*, const char*) {}

std::string connection_error(PGconn* connection, const char* what) {
  std::string message = connection ? PQerrorMessage(connection) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return std::string("postgres: ") + what + ": " + message;
}

bool send_statement(PGconn* connection, const PostgresStatement& statement) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (const std::string& parameter : statement.parameters) {
    values.push_back(parameter.data());
    lengths.push_back(static_cast<int>(parameter.size()));
    formats.push_back(1);
  }
  return PQsendQueryParams(connection, statement.sql.c_str(), static_cast<int>(values.size()),
                           nullptr, values.data(), lengths.data(), formats.data(), 1) == 1;
}

// Folds one PGresult into `out` (a statement yields one; the last error wins).
void collect(PGresult* result, PostgresResult& out) {
  ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
    int rows = PQntuples(result), columns = PQnfields(result);
    for (int row = 0; row < rows; ++row) {
      std::vector<std::optional<std::string>> values;
      for (int column = 0; column < columns; ++column) {
        if (PQgetisnull(result, row, column)) {
          values.emplace_back(std::nullopt);
        } else {
          values.emplace_back(std::string(PQgetvalue(result, row, column),
                                          static_cast<size_t>(PQgetlength(result, row, column))));
        }
      }
      out.rows.push_back(std::move(values));
    }
    const char* affected = PQcmdTuples(result);
    if (affected && *affected) out.affected = std::stoull(affected);
  } else {
    const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    out.sqlstate = state ? state : "";
    out.error = std::string("postgres: ") + PQresultErrorMessage(result);
    while (!out.error.empty() && out.error.back() == '\n') out.error.pop_back();
  }
  PQclear(result);
}

// A setup statement's failure that leaves the connection usable: another connection created the
// table meanwhile (CREATE TABLE IF NOT EXISTS races in PostgreSQL), or an engine without the
// setting (synchronous_commit on some PostgreSQL-compatible ones) keeps its default.
bool setup_succeeded(const PostgresResult& result) {
  return result.ok() || result.sqlstate == "23505" || result.sqlstate == "42P07" ||
         result.sqlstate == "42710" || result.sqlstate == "42704";
}

// A session that only says why there is no connection.
class FailedSession final : public PostgresSession {
 public:
  explicit FailedSession(std::string reason) : reason_(std::move(reason)) {}
  void query(PostgresStatement, PostgresCallback done) override {
    PostgresResult result;
    result.error = reason_;
    done(std::move(result));
  }

 private:
  std::string reason_;
};

// --- blocking connections (no worker) ---

// Connects and runs `setup`; "" or why not.
std::string open_blocking(const PostgresDatabase& database, ConnectionOwner& connection) {
  connection.reset(PQconnectdb(database.url.c_str()));
  if (PQstatus(connection.get()) != CONNECTION_OK)
    return connection_error(connection.get(), "connect");
  PQsetNoticeProcessor(connection.get(), ignore_notice, nullptr);
  for (const std::string& sql : database.setup) {
    PostgresResult result;
    collect(PQexec(connection.get(), sql.c_str()), result);
    if (!setup_succeeded(result)) return result.error;
  }
  return "";
}

class BlockingSession final : public PostgresSession {
 public:
  explicit BlockingSession(ConnectionOwner& connection) : connection_(connection) {}
  // A transaction left open (an update that failed half-way) must not leak into the next session.
  ~BlockingSession() override {
    if (connection_ && PQtransactionStatus(connection_.get()) != PQTRANS_IDLE) {
      PQclear(PQexec(connection_.get(), "ROLLBACK"));
    }
  }
  void query(PostgresStatement statement, PostgresCallback done) override {
    PostgresResult result;
    if (!send_statement(connection_.get(), statement)) {
      result.error = connection_error(connection_.get(), "send");
    } else {
      while (PGresult* part = PQgetResult(connection_.get())) collect(part, result);
    }
    // A dropped connection fails this statement; the next session connects again.
    if (PQstatus(connection_.get()) == CONNECTION_BAD) {
      result.error = connection_error(connection_.get(), "connection lost");
      connection_.reset();
    }
    done(std::move(result));
  }

 private:
  ConnectionOwner& connection_;
};

void with_blocking_session(const PostgresDatabase& database,
                           const std::function<void(std::shared_ptr<PostgresSession>)>& work) {
  thread_local std::map<std::string, ConnectionOwner> connections;
  auto slot = connections.try_emplace(database.url, nullptr, PQfinish).first;
  if (!slot->second || PQstatus(slot->second.get()) != CONNECTION_OK) {
    std::string failure = open_blocking(database, slot->second);
    if (!failure.empty()) {
      slot->second.reset();
      work(std::make_shared<FailedSession>(failure));
      return;
    }
  }
  work(std::make_shared<BlockingSession>(slot->second));
}

// --- the asynchronous pool of a worker ---

class Pool;

// One asynchronous connection in a worker's epoll set: connect, setup, then one statement at a
// time for whoever leased it.
class PooledConnection final : public EventSource {
 public:
  PooledConnection(Pool& pool, Worker& worker, const PostgresDatabase& database)
      : pool_(pool), worker_(worker), database_(database) {}
  ~PooledConnection() override { drop(false); }  // the epoll set may be gone: no unwatch

  bool open() const { return connection_ != nullptr; }
  bool in_transaction() const {
    return connection_ && PQtransactionStatus(connection_.get()) != PQTRANS_IDLE;
  }

  // Starts connecting; the pool hears of the outcome through connected() or connect_failed().
  void connect();
  void query(PostgresStatement statement, PostgresCallback done);
  void on_ready(Readiness readiness) override;

 private:
  enum class State { closed, connecting, setting_up, idle, querying };

  void poll_connect();
  void run_setup(size_t index);
  void read_results();
  void fail(const std::string& reason);
  void drop(bool unwatch);
  void watch(Interest interest);

  Pool& pool_;
  Worker& worker_;
  const PostgresDatabase& database_;
  ConnectionOwner connection_{nullptr, PQfinish};
  State state_ = State::closed;
  int fd_ = -1;
  Interest interest_ = Interest::none;
  PostgresCallback done_;
  PostgresResult result_;
};

class Pool {
 public:
  Pool(Worker& worker, PostgresDatabase database)
      : worker_(worker), database_(std::move(database)) {}
  ~Pool() { *alive_ = false; }

  void acquire(std::function<void(std::shared_ptr<PostgresSession>)> work);
  // A connection whose lease ended (open or dropped): to the next waiter, or idle.
  void ready(PooledConnection* connection);
  // The end of connect(): set up and ready, or why not.
  void connected(PooledConnection* connection);
  void connect_failed(PooledConnection* connection, const std::string& reason);
  Worker& worker() { return worker_; }
  const std::shared_ptr<bool>& alive() const { return alive_; }

 private:
  // Leases open idle connections to waiters, and connects one more if waiters remain.
  void dispatch();

  Worker& worker_;
  PostgresDatabase database_;
  std::vector<std::unique_ptr<PooledConnection>> connections_;
  std::vector<PooledConnection*> idle_;
  std::deque<std::function<void(std::shared_ptr<PostgresSession>)>> waiting_;
  size_t connecting_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A leased connection: back to the pool (rolled back if a transaction was left open) when the
// last pointer to it goes.
class Lease final : public PostgresSession {
 public:
  Lease(Pool& pool, PooledConnection* connection)
      : pool_(pool), alive_(pool.alive()), connection_(connection) {}
  ~Lease() override {
    if (!*alive_) return;
    Pool* pool = &pool_;
    PooledConnection* connection = connection_;
    std::shared_ptr<bool> alive = alive_;
    if (!connection->in_transaction()) {
      pool->worker().defer([pool, connection, alive] {
        if (*alive) pool->ready(connection);
      });
      return;
    }
    connection->query({"ROLLBACK", {}}, [pool, connection, alive](PostgresResult) {
      if (*alive) pool->ready(connection);
    });
  }
  void query(PostgresStatement statement, PostgresCallback done) override {
    connection_->query(std::move(statement), std::move(done));
  }

 private:
  Pool& pool_;
  std::shared_ptr<bool> alive_;
  PooledConnection* connection_;
};

void PooledConnection::watch(Interest interest) {
  int fd = PQsocket(connection_.get());
  if (fd != fd_) {
    if (fd_ >= 0) worker_.unwatch(fd_);
    fd_ = fd;
    if (fd_ >= 0) worker_.watch(fd_, this, interest);
  } else if (interest != interest_) {
    worker_.rewatch(fd_, this, interest);
  }
  interest_ = interest;
}

void PooledConnection::drop(bool unwatch) {
  // A socket libpq already closed (the server hung up) left the epoll set by itself.
  if (unwatch && fd_ >= 0 && connection_ && PQsocket(connection_.get()) == fd_) {
    worker_.unwatch(fd_);
  }
  fd_ = -1;
  interest_ = Interest::none;
  connection_.reset();
  state_ = State::closed;
}

void PooledConnection::connect() {
  connection_.reset(PQconnectStart(database_.url.c_str()));
  if (!connection_ || PQstatus(connection_.get()) == CONNECTION_BAD) {
    std::string reason = connection_error(connection_.get(), "connect");
    drop(false);
    pool_.connect_failed(this, reason);
    return;
  }
  PQsetnonblocking(connection_.get(), 1);
  PQsetNoticeProcessor(connection_.get(), ignore_notice, nullptr);
  state_ = State::connecting;
  watch(Interest::write);  // what PQconnectStart's caller must assume first
  if (fd_ < 0) {
    std::string reason = connection_error(connection_.get(), "connect");
    drop(false);
    pool_.connect_failed(this, reason);
  }
}

void PooledConnection::poll_connect() {
  // libpq may close and open another socket while it connects: leave the epoll set first.
  if (fd_ >= 0) worker_.unwatch(fd_);
  fd_ = -1;
  switch (PQconnectPoll(connection_.get())) {
    case PGRES_POLLING_READING:
      watch(Interest::read);
      return;
    case PGRES_POLLING_WRITING:
      watch(Interest::write);
      return;
    case PGRES_POLLING_OK:
      watch(Interest::read);
      state_ = State::setting_up;
      run_setup(0);
      return;
    default: {
      std::string reason = connection_error(connection_.get(), "connect");
      drop(false);
      pool_.connect_failed(this, reason);
    }
  }
}

void PooledConnection::run_setup(size_t index) {
  if (index == database_.setup.size()) {
    state_ = State::idle;
    pool_.connected(this);
    return;
  }
  state_ = State::setting_up;
  query({database_.setup[index], {}}, [this, index](PostgresResult result) {
    if (!setup_succeeded(result)) {
      drop(true);
      pool_.connect_failed(this, result.error);
      return;
    }
    run_setup(index + 1);
  });
}

void PooledConnection::query(PostgresStatement statement, PostgresCallback done) {
  if (!open() || !send_statement(connection_.get(), statement)) {
    PostgresResult result;
    result.error = open() ? connection_error(connection_.get(), "send")
                          : "postgres: connection lost (it is opened again for the next call)";
    if (open()) drop(true);
    done(std::move(result));
    return;
  }
  if (state_ != State::setting_up) state_ = State::querying;
  done_ = std::move(done);
  result_ = PostgresResult{};
  int flushed = PQflush(connection_.get());
  watch(flushed == 1 ? Interest::read_write : Interest::read);
}

void PooledConnection::on_ready(Readiness readiness) {
  if (!open()) return;
  if (state_ == State::connecting) {
    poll_connect();
    return;
  }
  if (readiness.writable && PQflush(connection_.get()) == 0) watch(Interest::read);
  if (readiness.readable || readiness.failed) {
    if (PQconsumeInput(connection_.get()) == 0) {
      fail(connection_error(connection_.get(), "connection lost"));
      return;
    }
    read_results();
  }
}

void PooledConnection::read_results() {
  if (!done_) {
    // Idle: what arrives is a notice, or the end of the connection (consumed above).
    while (!PQisBusy(connection_.get())) {
      PGresult* stray = PQgetResult(connection_.get());
      if (stray == nullptr) break;
      PQclear(stray);
    }
    return;
  }
  while (!PQisBusy(connection_.get())) {
    PGresult* part = PQgetResult(connection_.get());
    if (part == nullptr) {
      PostgresCallback done = std::move(done_);
      done_ = nullptr;
      if (state_ == State::querying) state_ = State::idle;
      done(std::move(result_));
      return;
    }
    collect(part, result_);
  }
}

void PooledConnection::fail(const std::string& reason) {
  log::warn("postgres connection lost", {{"error", reason}});
  drop(true);
  if (done_) {
    PostgresCallback done = std::move(done_);
    done_ = nullptr;
    PostgresResult result;
    result.error = reason;
    done(std::move(result));
  }
}

void Pool::acquire(std::function<void(std::shared_ptr<PostgresSession>)> work) {
  waiting_.push_back(std::move(work));
  dispatch();
}

void Pool::dispatch() {
  while (!waiting_.empty()) {
    auto open = std::find_if(idle_.begin(), idle_.end(),
                             [](PooledConnection* connection) { return connection->open(); });
    if (open == idle_.end()) break;
    PooledConnection* connection = *open;
    idle_.erase(open);
    auto work = std::move(waiting_.front());
    waiting_.pop_front();
    work(std::make_shared<Lease>(*this, connection));
  }
  if (waiting_.size() <= connecting_) return;
  PooledConnection* closed = nullptr;
  if (!idle_.empty()) {  // all closed here: dropped connections are opened again
    closed = idle_.back();
    idle_.pop_back();
  } else if (connections_.size() < kPoolSize) {
    connections_.push_back(std::make_unique<PooledConnection>(*this, worker_, database_));
    closed = connections_.back().get();
  }
  if (closed == nullptr) return;  // every connection is leased: the waiters wait their turn
  ++connecting_;
  closed->connect();
}

void Pool::ready(PooledConnection* connection) {
  idle_.push_back(connection);
  dispatch();
}

void Pool::connected(PooledConnection* connection) {
  --connecting_;
  ready(connection);
}

void Pool::connect_failed(PooledConnection* connection, const std::string& reason) {
  --connecting_;
  idle_.push_back(connection);  // closed: a later dispatch connects it again
  if (waiting_.empty()) return;
  auto work = std::move(waiting_.front());
  waiting_.pop_front();
  // Each waiter hears why rather than waiting for ever; the next one gets a fresh attempt.
  worker_.defer(
      [work = std::move(work), reason] { work(std::make_shared<FailedSession>(reason)); });
  worker_.defer([this, alive = alive_] {
    if (*alive) dispatch();
  });
}

// The pools of one worker, by URL.
struct Pools {
  std::unordered_map<std::string, std::unique_ptr<Pool>> by_url;
};

}  // namespace

void with_postgres_session(Worker* worker, const PostgresDatabase& database,
                           std::function<void(std::shared_ptr<PostgresSession>)> work) {
  if (worker == nullptr) {
    with_blocking_session(database, work);
    return;
  }
  std::shared_ptr<void>& slot = worker->extension(&kExtensionKey);
  if (!slot) slot = std::make_shared<Pools>();
  auto& pools = static_cast<Pools*>(slot.get())->by_url;
  std::unique_ptr<Pool>& pool = pools[database.url];
  if (!pool) pool = std::make_unique<Pool>(*worker, database);
  pool->acquire(std::move(work));
}

int64_t postgres_bigint(const std::string& binary) {
  uint64_t value = 0;
  for (unsigned char byte : binary) value = (value << 8) | byte;
  return static_cast<int64_t>(value);
}

}  // namespace depot
