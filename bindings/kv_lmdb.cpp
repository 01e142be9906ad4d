// kv on LMDB in the data directory (see kv_backend.hpp).
//
// Reads (get, exists, iter, count) are a read transaction on the calling thread: they complete at
// once and never wait for a writer.
//
// Writes inside a task go to the environment's writer thread (lmdb_env.hpp), and the task waits
// until they are committed (on a durable handle: and on disk), so that a reactor thread never
// waits on LMDB's writer lock nor writes pages, and the writes of every worker share commits.
// db:put and db:delete send their one write. db:update runs fn on the worker against a read
// transaction, a snapshot (kv_lmdb_update.cpp), recording what fn read (each key with its value
// or its absence, each iter with its rows) and buffering what it wrote (fn's later reads see
// them). Inside the shared write transaction, the writer checks that every one of those reads
// still gives the same answer — on the state after the batches before it in that transaction and
// after every other process's commits, which LMDB serialises with it — and only then applies the
// writes: the update is atomic and isolated across processes. If a read changed, nothing of it
// is written and fn runs again on a fresh snapshot (fn may run more than once, as on PostgreSQL).
// A read only changes when another batch committed, so some update always gets through.
//
// Outside a task (load time, `depot admin`, unit tests, a coroutine the script created) every
// call is one transaction on the calling thread and completes at once: db:update runs fn inside
// the write transaction (it never conflicts; it runs again only if the map had to grow), and a
// durable write fsyncs on the calling thread.
#include "bindings/kv_lmdb.hpp"

#include <map>

#include "bindings/kv_lmdb_access.hpp"
#include "bindings/kv_lmdb_update.hpp"
#include "bindings/lmdb_env.hpp"

namespace depot {
namespace {

// Runs `work`, turning LMDB failures into the outcome's error.
template <typename Work>
void guarded(const KvDone& done, Work&& work) {
  KvOutcome outcome;
  try {
    work(outcome);
  } catch (const std::exception& e) {
    outcome = KvOutcome{};
    outcome.error = e.what();
  }
  done(std::move(outcome));
}

// db:update's tx outside a task: the open write transaction itself.
class LmdbTransaction final : public KvTransaction {
 public:
  explicit LmdbTransaction(LmdbWriting& writing) : writing_(writing) {}
  std::optional<std::string> get(const std::string& db, std::string_view key) override {
    return get_in(writing_.txn(), writing_.database(db), key);
  }
  void put(const std::string& db, std::string_view key, const std::string& value) override {
    put_in(writing_.txn(), writing_.database(db), key, value);
  }
  bool remove(const std::string& db, std::string_view key) override {
    return delete_in(writing_.txn(), writing_.database(db), key);
  }
  KvPairs scan(const std::string& db, const KvRange& range) override {
    return scan_in(writing_.txn(), writing_.database(db), range);
  }

 private:
  LmdbWriting& writing_;
};

struct LuaErrorPending {};  // unwinds the write transaction of an fn that raised

class NoAttempt final : public KvAttempt {};

// db:put (a value) or db:delete (nullopt) inside a task; a delete's outcome.flag: the key existed.
class KeyWrite final : public KvLmdbBatch {
 public:
  KeyWrite(const KvCall& call, MDB_dbi dbi, std::string_view key, std::optional<std::string> value,
           KvDone done)
      : KvLmdbBatch(call.durable, std::move(done)),
        dbi_(dbi),
        key_(key),
        value_(std::move(value)) {}

  bool apply(LmdbWriting& writing) override {
    if (value_) {
      put_in(writing.txn(), dbi_, key_, *value_);
      return true;
    }
    outcome_.flag = delete_in(writing.txn(), dbi_, key_);
    return outcome_.flag;
  }

 private:
  MDB_dbi dbi_;
  std::string key_;
  std::optional<std::string> value_;
};

}  // namespace

LmdbBackend::LmdbBackend(const std::filesystem::path& directory, size_t map_size)
    : env_(LmdbEnv::open(directory, map_size)) {}

void LmdbBackend::write_here(const KvCall& call, const std::function<bool(LmdbWriting&)>& work) {
  bool wrote = false;
  env_->write([&](LmdbWriting& writing) { wrote = work(writing); });
  if (call.durable && wrote) env_->sync_now();
}

void LmdbBackend::open_database(const std::string& name) {
  env_->database(name);
}

void LmdbBackend::get(const KvCall& call, std::string_view key, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded(done, [&](KvOutcome& out) {
    env_->read([&](MDB_txn* txn) { out.value = get_in(txn, dbi, key); });
  });
}

void LmdbBackend::exists(const KvCall& call, std::string_view key, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded(done, [&](KvOutcome& out) {
    env_->read([&](MDB_txn* txn) { out.flag = find_in(txn, dbi, key).has_value(); });
  });
}

void LmdbBackend::put(const KvCall& call, std::string_view key, std::string value, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  if (call.worker != nullptr) {
    env_->write_async(
        std::make_unique<KeyWrite>(call, dbi, key, std::move(value), std::move(done)));
    return;
  }
  guarded(done, [&](KvOutcome&) {
    write_here(call, [&](LmdbWriting& writing) {
      put_in(writing.txn(), dbi, key, value);
      return true;
    });
  });
}

void LmdbBackend::remove(const KvCall& call, std::string_view key, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  if (call.worker != nullptr) {
    env_->write_async(std::make_unique<KeyWrite>(call, dbi, key, std::nullopt, std::move(done)));
    return;
  }
  guarded(done, [&](KvOutcome& out) {
    write_here(call, [&](LmdbWriting& writing) {
      out.flag = delete_in(writing.txn(), dbi, key);
      return out.flag;
    });
  });
}

void LmdbBackend::scan(const KvCall& call, const KvRange& range, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded(done, [&](KvOutcome& out) {
    env_->read([&](MDB_txn* txn) { out.pairs = scan_in(txn, dbi, range); });
  });
}

void LmdbBackend::count(const KvCall& call, const std::string& prefix, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded(done, [&](KvOutcome& out) {
    env_->read([&](MDB_txn* txn) {
      if (prefix.empty()) {
        MDB_stat stat;
        mdb_stat(txn, dbi, &stat);
        out.count = stat.ms_entries;
      } else {
        KvRange range;
        range.prefix = prefix;
        out.count = scan_in(txn, dbi, range, true).size();
      }
    });
  });
}

void LmdbBackend::update(const KvCall& call, const std::shared_ptr<KvAttempt>&,
                         const KvFunction& fn, KvDone done) {
  if (call.worker != nullptr) {
    update_on_snapshot(*env_, call.durable, fn, std::move(done));
    return;
  }
  KvOutcome outcome;
  try {
    write_here(call, [&](LmdbWriting& writing) {
      LmdbTransaction tx(writing);
      // A retry after the map grew runs fn again on a fresh transaction (fn resets its stack).
      if (!fn(tx)) throw LuaErrorPending{};
      return true;
    });
  } catch (const LuaErrorPending&) {
    outcome.raised = true;
  } catch (const std::exception& e) {
    outcome.error = e.what();
  }
  done(std::move(outcome));
}

std::shared_ptr<KvAttempt> LmdbBackend::new_attempt() {
  return std::make_shared<NoAttempt>();
}

void LmdbBackend::sync(Worker* worker, KvDone done) {
  if (worker != nullptr) {
    env_->sync_async([done = std::move(done)](const std::string& error) {
      KvOutcome outcome;
      outcome.error = error;
      done(std::move(outcome));
    });
    return;
  }
  guarded(done, [&](KvOutcome&) { env_->sync_now(); });
}

}  // namespace depot
