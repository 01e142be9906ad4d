// kv on LMDB in the data directory (see kv_backend.hpp): every call is one LMDB transaction on
// the calling thread, so it completes at once; only a durable write's fsync waits, on the
// syncer thread shared by every writer (lmdb_env.hpp). db:update runs fn inside the write
// transaction, which LMDB serialises: it runs once and never conflicts.
#include "bindings/kv_lmdb.hpp"

#include <algorithm>
#include <map>

#include "bindings/lmdb_env.hpp"

namespace depot {
namespace {

MDB_val as_val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::optional<std::string> get_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = as_val(key);
  MDB_val v;
  int code = mdb_get(txn, dbi, &k, &v);
  if (code == MDB_NOTFOUND) return std::nullopt;
  if (code != MDB_SUCCESS) throw LmdbError("mdb_get", code);
  return std::string(static_cast<const char*>(v.mv_data), v.mv_size);
}

void put_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key, const std::string& value) {
  MDB_val k = as_val(key);
  MDB_val v = as_val(value);
  int code = mdb_put(txn, dbi, &k, &v, 0);
  if (code != MDB_SUCCESS) throw LmdbError("mdb_put", code);
}

bool delete_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = as_val(key);
  int code = mdb_del(txn, dbi, &k, nullptr);
  if (code == MDB_NOTFOUND) return false;
  if (code != MDB_SUCCESS) throw LmdbError("mdb_del", code);
  return true;
}

// Key/value pairs of `range` in order.
KvPairs scan_in(MDB_txn* txn, MDB_dbi dbi, const KvRange& range, bool keys_only = false) {
  KvPairs found;
  MDB_cursor* cursor = nullptr;
  int code = mdb_cursor_open(txn, dbi, &cursor);
  if (code != MDB_SUCCESS) throw LmdbError("mdb_cursor_open", code);
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> owner(cursor, mdb_cursor_close);
  std::string low = range.low();
  std::string high = range.high();
  MDB_val k, v;
  if (!range.reverse) {
    k = as_val(low);
    code = low.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
                       : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  } else if (high.empty()) {
    code = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  } else {
    k = as_val(high);
    code = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    code = code == MDB_SUCCESS ? mdb_cursor_get(cursor, &k, &v, MDB_PREV)
                               : mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  }
  while (code == MDB_SUCCESS && found.size() < range.limit) {
    std::string key(static_cast<const char*>(k.mv_data), k.mv_size);
    if (!high.empty() && key >= high) {
      if (!range.reverse) break;
    } else if (key < low) {
      if (range.reverse) break;
    } else {
      found.emplace_back(
          std::move(key),
          keys_only ? std::string() : std::string(static_cast<const char*>(v.mv_data), v.mv_size));
    }
    code = mdb_cursor_get(cursor, &k, &v, range.reverse ? MDB_PREV : MDB_NEXT);
  }
  if (code != MDB_SUCCESS && code != MDB_NOTFOUND) throw LmdbError("mdb_cursor_get", code);
  return found;
}

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

// The tx of db:update on the open write transaction; tx:db(name) opens other databases in it.
class LmdbTransaction final : public KvTransaction {
 public:
  explicit LmdbTransaction(MDB_txn* txn) : txn_(txn) {}
  std::optional<std::string> get(const std::string& db, std::string_view key) override {
    return get_in(txn_, dbi(db), key);
  }
  void put(const std::string& db, std::string_view key, const std::string& value) override {
    put_in(txn_, dbi(db), key, value);
  }
  bool remove(const std::string& db, std::string_view key) override {
    return delete_in(txn_, dbi(db), key);
  }
  KvPairs scan(const std::string& db, const KvRange& range) override {
    return scan_in(txn_, dbi(db), range);
  }

 private:
  // Opened in this transaction: LmdbEnv::database would need a write transaction of its own.
  MDB_dbi dbi(const std::string& db) {
    auto found = dbis_.find(db);
    if (found != dbis_.end()) return found->second;
    MDB_dbi dbi = 0;
    int code = mdb_dbi_open(txn_, db.c_str(), MDB_CREATE, &dbi);
    if (code != MDB_SUCCESS) throw LmdbError("mdb_dbi_open", code);
    dbis_.emplace(db, dbi);
    return dbi;
  }

  MDB_txn* txn_;
  std::map<std::string, MDB_dbi> dbis_;
};

struct LuaErrorPending {};  // unwinds the write transaction of an fn that raised

class NoAttempt final : public KvAttempt {};

}  // namespace

LmdbBackend::LmdbBackend(const std::filesystem::path& directory, size_t map_size)
    : env_(LmdbEnv::open(directory, map_size)) {}

void LmdbBackend::finish_write(const KvCall& call, bool wrote, KvOutcome outcome, KvDone done) {
  if (!call.durable || !wrote || !outcome.error.empty()) {
    done(std::move(outcome));
    return;
  }
  if (call.worker == nullptr) {
    guarded(done, [&](KvOutcome& out) {
      env_->sync_now();
      out = std::move(outcome);
    });
    return;
  }
  // On the syncer thread: done (which resumes a task through its TaskHandle) may run anywhere.
  env_->sync_async([outcome = std::move(outcome), done = std::move(done)]() mutable {
    done(std::move(outcome));
  });
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
    env_->read([&](MDB_txn* txn) { out.flag = get_in(txn, dbi, key).has_value(); });
  });
}

void LmdbBackend::put(const KvCall& call, std::string_view key, std::string value, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded([&](KvOutcome outcome) { finish_write(call, true, std::move(outcome), std::move(done)); },
          [&](KvOutcome&) { env_->write([&](MDB_txn* txn) { put_in(txn, dbi, key, value); }); });
}

void LmdbBackend::remove(const KvCall& call, std::string_view key, KvDone done) {
  MDB_dbi dbi = env_->database(call.db);
  guarded(
      [&](KvOutcome outcome) {
        bool existed = outcome.flag;
        finish_write(call, existed, std::move(outcome), std::move(done));
      },
      [&](KvOutcome& out) {
        env_->write([&](MDB_txn* txn) { out.flag = delete_in(txn, dbi, key); });
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
  KvOutcome outcome;
  try {
    // A retry after the map grew runs fn again on a fresh transaction (fn resets its stack).
    env_->write([&](MDB_txn* txn) {
      LmdbTransaction tx(txn);
      if (!fn(tx)) throw LuaErrorPending{};
    });
  } catch (const LuaErrorPending&) {
    outcome.raised = true;
  } catch (const std::exception& e) {
    outcome.error = e.what();
  }
  bool wrote = !outcome.raised;
  finish_write(call, wrote, std::move(outcome), std::move(done));
}

std::shared_ptr<KvAttempt> LmdbBackend::new_attempt() {
  return std::make_shared<NoAttempt>();
}

void LmdbBackend::sync(Worker*, KvDone done) {
  guarded(done, [&](KvOutcome&) { env_->sync_now(); });
}

}  // namespace depot
