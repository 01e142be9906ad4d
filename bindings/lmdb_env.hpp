// LMDB environments for the kv module: one per data directory per process, shared by every Lua
// state (all workers, all script generations). RAII transactions; the map grows by itself when
// full, and a map another process on the same files grew is adopted (MDB_MAP_RESIZED); durable
// commits are synced by a group-commit thread so that many concurrent durable writers share one
// fsync and no reactor thread ever waits on the disk.
//
// Never keep a transaction open across a yield: it pins pages and (for writes) blocks every other
// writer in the process. The kv module makes that impossible (see kv.cpp).
#pragma once

#include <lmdb.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace depot {

struct LmdbError : std::runtime_error {
  LmdbError(const std::string& what, int code)
      : std::runtime_error(what + ": " + mdb_strerror(code)), code(code) {}
  int code;
};

class LmdbEnv {
 public:
  // The environment for `directory` (created if missing); `map_size` applies when first opened.
  static std::shared_ptr<LmdbEnv> open(const std::filesystem::path& directory, size_t map_size);
  // The environment for `directory` if this process has it open, else null (never creates one).
  static std::shared_ptr<LmdbEnv> find_open(const std::filesystem::path& directory);
  ~LmdbEnv();

  MDB_env* env() const { return env_; }
  // The handle of a named database, created on first use.
  MDB_dbi database(const std::string& name);

  // Runs `work` in a transaction; a write transaction is committed when `work` returns normally
  // and aborted if it throws. A write that fills the map grows it and runs `work` again.
  void read(const std::function<void(MDB_txn*)>& work);
  void write(const std::function<void(MDB_txn*)>& work);

  // Asks for everything committed so far to reach the disk; `done` runs on the syncer thread
  // after the fsync (one fsync serves every request queued meanwhile).
  void sync_async(std::function<void()> done);
  void sync_now();

 private:
  explicit LmdbEnv(const std::filesystem::path& directory, size_t map_size);
  // mdb_txn_begin under `shared` (a shared lock of resize_mutex_), adopting the map size first
  // when another process sharing the file grew the map past this one's (MDB_MAP_RESIZED).
  MDB_txn* begin(unsigned flags, std::shared_lock<std::shared_mutex>& shared);
  void adopt_map_size();
  void grow();
  void run_syncer();

  MDB_env* env_ = nullptr;
  std::shared_mutex resize_mutex_;  // transactions share it; growing the map takes it alone
  std::mutex dbi_mutex_;
  std::map<std::string, MDB_dbi> databases_;

  std::mutex sync_mutex_;
  std::condition_variable sync_wanted_;
  std::vector<std::function<void()>> sync_waiters_;
  bool dirty_ = false;
  bool stopping_ = false;
  std::thread syncer_;
};

}  // namespace depot
