// kv on PostgreSQL (see kv_postgres.hpp).
//
// db:update — fn must never wait, yet its reads come from a server. The design: fn runs on the
// worker against what this attempt has read so far inside one SERIALIZABLE transaction, and its
// writes are buffered. A read of something not fetched yet (a key, or an iter range) is recorded
// and raises out of fn ("not fetched yet"; fn's own pcall cannot hide it: the attempt remembers).
// The step then fetches every recorded read inside the transaction (BEGIN on the first fetch)
// and asks for fn to run again; once fn completes having read only fetched data, its writes are
// sent and the transaction commits. Because every read of the final run came from that one
// transaction's snapshot, and SERIALIZABLE refuses to commit a transaction another one
// invalidated (SQLSTATE 40001), the update is atomic and isolated across every replica; on a
// serialization failure the attempt starts over with a fresh transaction (at most
// kMaxConflicts times). Why this rather than locks: fn can not wait, so it cannot take a lock
// row by row; and it rather than "compare versions at commit": PostgreSQL, CockroachDB and
// YugabyteDB all provide SERIALIZABLE, which checks exactly what fn read, ranges included
// (a new key inside an iter'd range is a conflict), with no version column to maintain.
//
// fn may therefore run several times per db:update (once more per round of new reads, and again
// after a conflict); its effects outside tx must be idempotent, as the docs say.
#include "bindings/kv_postgres.hpp"

#include <map>
#include <tuple>

#include "bindings/kv_write_buffer.hpp"

namespace depot {
namespace {

constexpr int kMaxConflicts = 1000;
const char* const kSchema =
    "CREATE TABLE IF NOT EXISTS depot_kv (db text NOT NULL, key bytea NOT NULL, "
    "value bytea NOT NULL, PRIMARY KEY (db, key))";
const char* const kConflictState = "40001";  // serialization_failure
const char* const kDeadlockState = "40P01";

bool is_conflict(const PostgresResult& result) {
  return result.sqlstate == kConflictState || result.sqlstate == kDeadlockState;
}

// One read: keys of `db` in [low, high) (high empty: no bound), in order, at most `limit`.
struct Read {
  std::string db, low, high;
  bool reverse = false;
  size_t limit = SIZE_MAX;
  bool operator<(const Read& other) const {
    return std::tie(db, low, high, reverse, limit) <
           std::tie(other.db, other.low, other.high, other.reverse, other.limit);
  }
};

Read point_read(const std::string& db, std::string_view key) {
  std::string after(key);
  after.push_back('\0');  // the first key after `key`
  return Read{db, std::string(key), after, false, 1};
}

PostgresStatement scan_statement(const Read& read) {
  PostgresStatement statement{"SELECT key, value FROM depot_kv WHERE db = $1 AND key >= $2",
                              {read.db, read.low}};
  if (!read.high.empty()) {
    statement.sql += " AND key < $3";
    statement.parameters.push_back(read.high);
  }
  statement.sql += read.reverse ? " ORDER BY key DESC" : " ORDER BY key";
  if (read.limit != SIZE_MAX) statement.sql += " LIMIT " + std::to_string(read.limit);
  return statement;
}

KvPairs pairs_of(const PostgresResult& result) {
  KvPairs pairs;
  for (const auto& row : result.rows) pairs.emplace_back(row[0].value_or(""), row[1].value_or(""));
  return pairs;
}

PostgresStatement put_statement(const std::string& db, std::string_view key, std::string value) {
  return {
      "INSERT INTO depot_kv (db, key, value) VALUES ($1, $2, $3) "
      "ON CONFLICT (db, key) DO UPDATE SET value = excluded.value",
      {db, std::string(key), std::move(value)}};
}

PostgresStatement delete_statement(const std::string& db, std::string_view key) {
  return {"DELETE FROM depot_kv WHERE db = $1 AND key = $2", {db, std::string(key)}};
}

struct NotFetched : std::runtime_error {
  NotFetched() : std::runtime_error("not fetched yet (the update runs again once it is)") {}
};

// What db:update keeps between runs of fn: the transaction and everything read in it.
class PostgresAttempt final : public KvAttempt {
 public:
  std::shared_ptr<PostgresSession> session;  // open transaction, or null before the first fetch
  std::map<Read, KvPairs> reads;
  std::vector<Read> missing;  // reads of the last run of fn that were not fetched
  int conflicts = 0;

  // After a conflict: a new transaction, nothing read yet.
  void restart() {
    session.reset();  // the lease rolls the old transaction back
    reads.clear();
    missing.clear();
    ++conflicts;
  }
};

// The tx of one run of fn: reads from the attempt, writes buffered (and seen by later reads).
class PostgresTransaction final : public KvTransaction {
 public:
  explicit PostgresTransaction(PostgresAttempt& attempt) : attempt_(attempt) {}

  std::optional<std::string> get(const std::string& db, std::string_view key) override {
    if (const auto* written = buffer_.find(db, key)) return *written;
    const KvPairs& pairs = fetched(point_read(db, key));
    if (pairs.empty() || pairs[0].first != key) return std::nullopt;
    return pairs[0].second;
  }

  void put(const std::string& db, std::string_view key, const std::string& value) override {
    buffer_.put(db, key, value);
  }

  bool remove(const std::string& db, std::string_view key) override {
    bool existed = get(db, key).has_value();
    buffer_.remove(db, key);
    return existed;
  }

  KvPairs scan(const std::string& db, const KvRange& range) override {
    KvRange stored = buffer_.stored_range(db, range);
    Read read{db, stored.low(), stored.high(), stored.reverse, stored.limit};
    return buffer_.overlay(db, range, fetched(read));
  }

  const KvWriteBuffer::Writes& writes() const { return buffer_.writes(); }

 private:
  const KvPairs& fetched(const Read& read) {
    auto found = attempt_.reads.find(read);
    if (found != attempt_.reads.end()) return found->second;
    attempt_.missing.push_back(read);
    throw NotFetched();
  }

  PostgresAttempt& attempt_;
  KvWriteBuffer buffer_;
};

KvOutcome failure(const PostgresResult& result) {
  KvOutcome outcome;
  outcome.error = result.error;
  return outcome;
}

KvOutcome run_again() {
  KvOutcome outcome;
  outcome.flag = true;
  return outcome;
}

// Sends `statements` one after another on `session`; `done` gets the first failure or success.
void run_in_order(const std::shared_ptr<PostgresSession>& session,
                  std::shared_ptr<std::vector<PostgresStatement>> statements, size_t index,
                  std::function<void(PostgresResult&, size_t index)> each,
                  std::function<void(PostgresResult)> done) {
  if (index == statements->size()) {
    done(PostgresResult{});
    return;
  }
  session->query((*statements)[index],
                 [session, statements, index, each, done](PostgresResult result) {
                   if (!result.ok()) {
                     done(std::move(result));
                     return;
                   }
                   each(result, index);
                   run_in_order(session, statements, index + 1, each, done);
                 });
}

// The end of a step that talked to the server: a conflict restarts the attempt.
void finish_step(const std::shared_ptr<PostgresAttempt>& attempt, PostgresResult& result,
                 const KvDone& done) {
  if (result.ok()) {
    done(run_again());
    return;
  }
  if (is_conflict(result)) {
    attempt->restart();
    if (attempt->conflicts <= kMaxConflicts) {
      done(run_again());
      return;
    }
    result.error = "gave up after " + std::to_string(kMaxConflicts) + " conflicts";
  }
  attempt->session.reset();
  done(failure(result));
}

void fetch_missing(const std::shared_ptr<PostgresAttempt>& attempt, KvDone done) {
  auto statements = std::make_shared<std::vector<PostgresStatement>>();
  auto reads = std::make_shared<std::vector<Read>>(std::move(attempt->missing));
  attempt->missing.clear();
  for (const Read& read : *reads) statements->push_back(scan_statement(read));
  run_in_order(
      attempt->session, statements, 0,
      [attempt, reads](PostgresResult& result, size_t index) {
        attempt->reads[(*reads)[index]] = pairs_of(result);
      },
      [attempt, done](PostgresResult result) { finish_step(attempt, result, done); });
}

void commit(const std::shared_ptr<PostgresAttempt>& attempt, const PostgresTransaction& tx,
            KvDone done) {
  auto statements = std::make_shared<std::vector<PostgresStatement>>();
  for (const auto& [key, value] : tx.writes()) {
    statements->push_back(value ? put_statement(key.first, key.second, *value)
                                : delete_statement(key.first, key.second));
  }
  statements->push_back({"COMMIT", {}});
  run_in_order(
      attempt->session, statements, 0, [](PostgresResult&, size_t) {},
      [attempt, done](PostgresResult result) {
        if (!result.ok()) {
          finish_step(attempt, result, done);
          return;
        }
        attempt->session.reset();
        done(KvOutcome{});
      });
}

}  // namespace

PostgresBackend::PostgresBackend(const std::string& url)
    : durable_{url, {kSchema}}, batched_{url, {kSchema, "SET synchronous_commit = off"}} {}

void PostgresBackend::run(const KvCall& call, PostgresStatement statement,
                          std::function<void(PostgresResult&, KvOutcome&)> read, KvDone done) {
  with_postgres_session(call.worker, database(call.durable),
                        [statement = std::move(statement), read = std::move(read),
                         done = std::move(done)](std::shared_ptr<PostgresSession> session) mutable {
                          session->query(std::move(statement),
                                         [session, read, done](PostgresResult result) {
                                           if (!result.ok()) {
                                             done(failure(result));
                                             return;
                                           }
                                           KvOutcome outcome;
                                           read(result, outcome);
                                           done(std::move(outcome));
                                         });
                        });
}

void PostgresBackend::get(const KvCall& call, std::string_view key, KvDone done) {
  run(
      call, {"SELECT value FROM depot_kv WHERE db = $1 AND key = $2", {call.db, std::string(key)}},
      [](PostgresResult& result, KvOutcome& outcome) {
        if (!result.rows.empty()) outcome.value = result.rows[0][0].value_or("");
      },
      std::move(done));
}

void PostgresBackend::exists(const KvCall& call, std::string_view key, KvDone done) {
  run(
      call, {"SELECT 1 FROM depot_kv WHERE db = $1 AND key = $2", {call.db, std::string(key)}},
      [](PostgresResult& result, KvOutcome& outcome) { outcome.flag = !result.rows.empty(); },
      std::move(done));
}

void PostgresBackend::put(const KvCall& call, std::string_view key, std::string value,
                          KvDone done) {
  run(
      call, put_statement(call.db, key, std::move(value)), [](PostgresResult&, KvOutcome&) {},
      std::move(done));
}

void PostgresBackend::remove(const KvCall& call, std::string_view key, KvDone done) {
  run(
      call, delete_statement(call.db, key),
      [](PostgresResult& result, KvOutcome& outcome) { outcome.flag = result.affected > 0; },
      std::move(done));
}

void PostgresBackend::scan(const KvCall& call, const KvRange& range, KvDone done) {
  run(
      call, scan_statement(Read{call.db, range.low(), range.high(), range.reverse, range.limit}),
      [](PostgresResult& result, KvOutcome& outcome) { outcome.pairs = pairs_of(result); },
      std::move(done));
}

void PostgresBackend::count(const KvCall& call, const std::string& prefix, KvDone done) {
  KvRange range;
  range.prefix = prefix;
  PostgresStatement statement{"SELECT count(*) FROM depot_kv WHERE db = $1 AND key >= $2",
                              {call.db, range.low()}};
  if (!range.high().empty()) {
    statement.sql += " AND key < $3";
    statement.parameters.push_back(range.high());
  }
  run(
      call, std::move(statement),
      [](PostgresResult& result, KvOutcome& outcome) {
        outcome.count = static_cast<uint64_t>(postgres_bigint(result.rows[0][0].value_or("")));
      },
      std::move(done));
}

void PostgresBackend::update(const KvCall& call, const std::shared_ptr<KvAttempt>& base,
                             const KvFunction& fn, KvDone done) {
  auto attempt = std::static_pointer_cast<PostgresAttempt>(base);
  PostgresTransaction tx(*attempt);
  bool returned = fn(tx);
  if (!attempt->missing.empty()) {
    if (attempt->session) {
      fetch_missing(attempt, std::move(done));
      return;
    }
    with_postgres_session(call.worker, database(call.durable),
                          [attempt, done](std::shared_ptr<PostgresSession> session) {
                            attempt->session = session;
                            session->query({"BEGIN ISOLATION LEVEL SERIALIZABLE", {}},
                                           [attempt, done](PostgresResult result) {
                                             if (!result.ok()) {
                                               attempt->session.reset();
                                               done(failure(result));
                                               return;
                                             }
                                             fetch_missing(attempt, done);
                                           });
                          });
    return;
  }
  if (!returned) {
    attempt->session.reset();  // rolled back: fn raised on data it had
    KvOutcome outcome;
    outcome.raised = true;
    done(std::move(outcome));
    return;
  }
  if (!attempt->session) {
    // fn read nothing: its writes alone, in a transaction of their own.
    with_postgres_session(call.worker, database(call.durable),
                          [attempt, tx, done](std::shared_ptr<PostgresSession> session) {
                            attempt->session = session;
                            session->query({"BEGIN", {}},
                                           [attempt, tx, done](PostgresResult result) {
                                             if (!result.ok()) {
                                               attempt->session.reset();
                                               done(failure(result));
                                               return;
                                             }
                                             commit(attempt, tx, done);
                                           });
                          });
    return;
  }
  commit(attempt, tx, std::move(done));
}

std::shared_ptr<KvAttempt> PostgresBackend::new_attempt() {
  return std::make_shared<PostgresAttempt>();
}

void PostgresBackend::sync(Worker* worker, KvDone done) {
  // A durable commit that writes WAL flushes the WAL up to it, and with it every batched commit
  // before it: so one upsert of a row no script can see (kv.open refuses the empty name).
  static const std::string kSyncDb;
  KvCall call{worker, kSyncDb, true};
  run(
      call, put_statement(kSyncDb, "sync", ""), [](PostgresResult&, KvOutcome&) {},
      std::move(done));
}

}  // namespace depot
