// db:update inside a task on LMDB: a snapshot for fn, a check of its reads at commit (see
// kv_lmdb_update.hpp).
#include "bindings/kv_lmdb_update.hpp"

#include <map>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "bindings/kv_lmdb_access.hpp"
#include "bindings/kv_write_buffer.hpp"
#include "bindings/lmdb_env.hpp"

namespace depot {
namespace {

struct NotOpenedYet : std::runtime_error {
  NotOpenedYet()
      : std::runtime_error("database not opened yet (the update runs again once it is)") {}
};

// What one run of fn read, each read with the answer it got.
struct ReadSet {
  struct Scan {
    MDB_dbi dbi;
    KvRange range;
    KvPairs rows;
  };
  std::map<std::pair<MDB_dbi, std::string>, std::optional<std::string>> keys;
  std::vector<Scan> scans;

  // Whether every read gives the same answer in `txn`.
  bool holds(MDB_txn* txn) const {
    for (const auto& [where, value] : keys) {
      std::optional<std::string_view> now = find_in(txn, where.first, where.second);
      if (now.has_value() != value.has_value() || (now && *now != *value)) return false;
    }
    for (const Scan& scan : scans) {
      if (scan_in(txn, scan.dbi, scan.range) != scan.rows) return false;
    }
    return true;
  }
};

// Everything one run of fn leaves for the commit.
struct FnRun {
  ReadSet reads;
  KvWriteBuffer writes;
  // Databases fn reached that the snapshot has no handle for: opened first, then fn runs again.
  std::vector<std::string> unopened;
};

// The tx of fn: reads from the snapshot (recorded), writes into the buffer (seen by later reads).
class SnapshotTransaction final : public KvTransaction {
 public:
  SnapshotTransaction(LmdbEnv& env, MDB_txn* snapshot) : env_(env), snapshot_(snapshot) {}

  std::optional<std::string> get(const std::string& db, std::string_view key) override {
    if (const auto* written = run_.writes.find(db, key)) return *written;
    MDB_dbi handle = dbi(db);
    std::optional<std::string> value = get_in(snapshot_, handle, key);
    run_.reads.keys.emplace(std::make_pair(handle, std::string(key)), value);
    return value;
  }

  void put(const std::string& db, std::string_view key, const std::string& value) override {
    run_.writes.put(db, key, value);
  }

  bool remove(const std::string& db, std::string_view key) override {
    bool existed = get(db, key).has_value();
    run_.writes.remove(db, key);
    return existed;
  }

  KvPairs scan(const std::string& db, const KvRange& range) override {
    MDB_dbi handle = dbi(db);
    KvRange stored = run_.writes.stored_range(db, range);
    KvPairs rows = scan_in(snapshot_, handle, stored);
    KvPairs seen = run_.writes.overlay(db, range, rows);
    run_.reads.scans.push_back({handle, std::move(stored), std::move(rows)});
    return seen;
  }

  FnRun take() { return std::move(run_); }

 private:
  MDB_dbi dbi(const std::string& db) {
    auto found = dbis_.find(db);
    if (found != dbis_.end()) return found->second;
    std::optional<MDB_dbi> opened = env_.opened_database(db);
    unsigned flags = 0;
    // A handle opened after the snapshot began is not in it (mdb_dbi_flags refuses it).
    if (!opened || mdb_dbi_flags(snapshot_, *opened, &flags) != MDB_SUCCESS) {
      run_.unopened.push_back(db);
      throw NotOpenedYet();
    }
    dbis_.emplace(db, *opened);
    return *opened;
  }

  LmdbEnv& env_;
  MDB_txn* snapshot_;
  std::map<std::string, MDB_dbi> dbis_;
  FnRun run_;
};

// fn's writes, applied only if its reads still hold; else fn runs again (outcome.flag).
class UpdateCommit final : public KvLmdbBatch {
 public:
  UpdateCommit(bool durable, KvDone done, FnRun run)
      : KvLmdbBatch(durable, std::move(done)), run_(std::move(run)) {}

  bool apply(LmdbWriting& writing) override {
    outcome_ = KvOutcome{};
    if (!run_.reads.holds(writing.txn())) {
      outcome_.flag = true;
      return false;
    }
    for (const auto& [where, value] : run_.writes.writes()) {
      MDB_dbi dbi = writing.database(where.first);
      if (value) {
        put_in(writing.txn(), dbi, where.second, *value);
      } else {
        delete_in(writing.txn(), dbi, where.second);
      }
    }
    return true;
  }

 private:
  FnRun run_;
};

// Opens (creates) the databases fn reached before this process had them; then fn runs again.
// Not durable: an empty database lost in a crash is created again by the next run.
class DatabasesOpen final : public KvLmdbBatch {
 public:
  DatabasesOpen(KvDone done, std::vector<std::string> names)
      : KvLmdbBatch(false, std::move(done)), names_(std::move(names)) {}

  bool apply(LmdbWriting& writing) override {
    for (const std::string& name : names_) writing.database(name);
    outcome_ = KvOutcome{};
    outcome_.flag = true;
    return true;
  }

 private:
  std::vector<std::string> names_;
};

}  // namespace

void update_on_snapshot(LmdbEnv& env, bool durable, const KvFunction& fn, KvDone done) {
  FnRun run;
  bool returned = false;
  try {
    env.read([&](MDB_txn* snapshot) {
      SnapshotTransaction tx(env, snapshot);
      returned = fn(tx);
      run = tx.take();
    });
  } catch (const std::exception& e) {
    KvOutcome failed;
    failed.error = e.what();
    done(std::move(failed));
    return;
  }
  if (!run.unopened.empty()) {
    env.write_async(std::make_unique<DatabasesOpen>(std::move(done), std::move(run.unopened)));
    return;
  }
  if (!returned || run.writes.empty()) {
    // Raised: nothing is written. Wrote nothing: its reads all came from one snapshot, which is
    // as consistent as a commit.
    KvOutcome outcome;
    outcome.raised = !returned;
    done(std::move(outcome));
    return;
  }
  env.write_async(std::make_unique<UpdateCommit>(durable, std::move(done), std::move(run)));
}

}  // namespace depot
