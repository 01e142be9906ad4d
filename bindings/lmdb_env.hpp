// LMDB environments for the kv module: one per data directory per process, shared by every Lua
// state (all workers, all script generations). RAII transactions; the map grows by itself when
// full, and a map another process on the same files grew is adopted (MDB_MAP_RESIZED).
//
// Two threads per environment keep the reactor threads off LMDB's writer lock and off the disk:
// - the writer thread commits the batches every worker queues (write_async) together, in one
//   write transaction per round: the workers never wait on LMDB's writer mutex nor on the
//   commit's pwrites, and pages that several batches dirty are written once;
// - the syncer thread fsyncs for durable commits, one fsync for every commit queued meanwhile,
//   while the writer goes on with the next round.
// Writes outside a task (load time, `depot admin`, unit tests) run on the calling thread
// (write), which LMDB serialises with the writer thread's transactions, in this process and in
// every other process sharing the files.
//
// Never keep a transaction open across a yield: it pins pages and (for writes) blocks every other
// writer. The kv module makes that impossible (see kv.cpp).
#pragma once

#include <lmdb.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace depot {

struct LmdbError : std::runtime_error {
  LmdbError(const std::string& what, int code)
      : std::runtime_error(what + ": " + mdb_strerror(code)), code(code) {}
  int code;
};

class LmdbEnv;

// A write transaction in progress, and the databases it opened: they become every
// transaction's once it commits (a handle opened in a transaction that aborts is closed).
class LmdbWriting {
 public:
  MDB_txn* txn() const { return txn_; }
  // The handle of a named database, created in this transaction if it does not exist.
  MDB_dbi database(const std::string& name);

 private:
  friend class LmdbEnv;
  LmdbWriting(LmdbEnv& env, MDB_txn* txn) : env_(env), txn_(txn) {}

  LmdbEnv& env_;
  MDB_txn* txn_;
  std::vector<std::pair<std::string, MDB_dbi>> opened_;
};

// What one caller hands the writer thread: writes that commit in a transaction shared with the
// batches other callers queued meanwhile.
class LmdbBatch {
 public:
  explicit LmdbBatch(bool durable) : durable_(durable) {}
  virtual ~LmdbBatch() = default;
  bool durable() const { return durable_; }
  // Writer thread, inside the shared transaction, after the batches queued before it: returns
  // whether it changed the store. Throws to fail; then every batch of the round runs again alone,
  // in a transaction of its own, so only the failing one fails. Runs again, too, when the map
  // had to grow: it must start afresh each time.
  virtual bool apply(LmdbWriting& writing) = 0;
  // Once committed (`error` empty) or failed (nothing of this batch written): on the writer
  // thread, or on the syncer thread after the fsync for a durable batch that changed the store.
  virtual void committed(const std::string& error) = 0;

 private:
  bool durable_;
};

class LmdbEnv {
 public:
  // The environment for `directory` (created if missing); `map_size` applies when first opened.
  static std::shared_ptr<LmdbEnv> open(const std::filesystem::path& directory, size_t map_size);
  // The environment for `directory` if this process has it open, else null (never creates one).
  static std::shared_ptr<LmdbEnv> find_open(const std::filesystem::path& directory);
  // Commits what is still queued, then closes.
  ~LmdbEnv();

  MDB_env* env() const { return env_; }
  // The handle of a named database, created on first use (a write transaction of its own).
  MDB_dbi database(const std::string& name);
  // The handle of a named database if a committed transaction of this process opened it.
  std::optional<MDB_dbi> opened_database(const std::string& name);

  // Runs `work` in a transaction on the calling thread; a write transaction is committed when
  // `work` returns normally and aborted if it throws. A write that fills the map grows it and
  // runs `work` again.
  void read(const std::function<void(MDB_txn*)>& work);
  void write(const std::function<void(LmdbWriting&)>& work);

  // Any thread: queues `batch` for the writer thread, which commits it with the others queued
  // at that time (see LmdbBatch).
  void write_async(std::unique_ptr<LmdbBatch> batch);

  // Asks for everything committed so far to reach the disk; `done` runs on the syncer thread
  // after the fsync (one fsync serves every request queued meanwhile), with the fsync's error or
  // "".
  void sync_async(std::function<void(const std::string& error)> done);
  void sync_now();

 private:
  friend class LmdbWriting;
  explicit LmdbEnv(const std::filesystem::path& directory, size_t map_size);
  // mdb_txn_begin under `shared` (a shared lock of resize_mutex_), adopting the map size first
  // when another process sharing the file grew the map past this one's (MDB_MAP_RESIZED).
  MDB_txn* begin(unsigned flags, std::shared_lock<std::shared_mutex>& shared);
  void adopt_map_size();
  void grow();
  void run_writer();
  // One round of the writer: `batches` in one transaction (or each alone if that one fails).
  void commit_together(std::vector<std::unique_ptr<LmdbBatch>>& batches);
  void run_syncer();

  MDB_env* env_ = nullptr;
  std::shared_mutex resize_mutex_;  // transactions share it; growing the map takes it alone
  std::mutex dbi_mutex_;
  std::map<std::string, MDB_dbi> databases_;

  std::mutex write_mutex_;
  std::condition_variable write_wanted_;
  std::vector<std::unique_ptr<LmdbBatch>> write_queue_;
  bool writer_stopping_ = false;
  std::thread writer_;

  std::mutex sync_mutex_;
  std::condition_variable sync_wanted_;
  std::vector<std::function<void(const std::string&)>> sync_waiters_;
  bool dirty_ = false;
  bool stopping_ = false;
  std::thread syncer_;
};

}  // namespace depot
