// Shared LMDB environments with map growth and group-commit syncing (see lmdb_env.hpp).
#include "bindings/lmdb_env.hpp"

#include "engine/log.hpp"

namespace depot {
namespace {
constexpr auto kBackgroundSyncInterval = std::chrono::milliseconds(100);

std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<LmdbEnv>> g_registry;

void check(int code, const char* what) {
  if (code != MDB_SUCCESS) throw LmdbError(what, code);
}
}  // namespace

std::shared_ptr<LmdbEnv> LmdbEnv::open(const std::filesystem::path& directory, size_t map_size) {
  std::filesystem::create_directories(directory);
  std::string key = std::filesystem::canonical(directory).string();
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  if (auto existing = g_registry[key].lock()) return existing;
  std::shared_ptr<LmdbEnv> env(new LmdbEnv(key, map_size));
  g_registry[key] = env;
  return env;
}

std::shared_ptr<LmdbEnv> LmdbEnv::find_open(const std::filesystem::path& directory) {
  std::error_code error;
  std::string key = std::filesystem::canonical(directory, error).string();
  if (error) return nullptr;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto found = g_registry.find(key);
  return found == g_registry.end() ? nullptr : found->second.lock();
}

LmdbEnv::LmdbEnv(const std::filesystem::path& directory, size_t map_size) {
  check(mdb_env_create(&env_), "mdb_env_create");
  mdb_env_set_maxdbs(env_, 128);
  mdb_env_set_mapsize(env_, map_size);
  // NOSYNC: commits never fsync on the committing (reactor) thread; the syncer thread does.
  int code = mdb_env_open(env_, directory.c_str(), MDB_NOTLS | MDB_NOSYNC | MDB_NOMETASYNC, 0644);
  if (code != MDB_SUCCESS) {
    mdb_env_close(env_);
    throw LmdbError("mdb_env_open " + directory.string(), code);
  }
  syncer_ = std::thread([this] { run_syncer(); });
}

LmdbEnv::~LmdbEnv() {
  {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    stopping_ = true;
  }
  sync_wanted_.notify_all();
  syncer_.join();
  mdb_env_sync(env_, 1);
  mdb_env_close(env_);
}

MDB_dbi LmdbEnv::database(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(dbi_mutex_);
    auto it = databases_.find(name);
    if (it != databases_.end()) return it->second;
  }
  MDB_dbi dbi = 0;
  write([&](MDB_txn* txn) {
    check(mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbi), "mdb_dbi_open");
  });
  std::lock_guard<std::mutex> lock(dbi_mutex_);
  databases_.emplace(name, dbi);
  return dbi;
}

MDB_txn* LmdbEnv::begin(unsigned flags, std::shared_lock<std::shared_mutex>& shared) {
  for (;;) {
    MDB_txn* txn = nullptr;
    int code = mdb_txn_begin(env_, nullptr, flags, &txn);
    if (code != MDB_MAP_RESIZED) {
      check(code, "mdb_txn_begin");
      return txn;
    }
    shared.unlock();
    adopt_map_size();
    shared.lock();
  }
}

void LmdbEnv::read(const std::function<void(MDB_txn*)>& work) {
  std::shared_lock<std::shared_mutex> shared(resize_mutex_);
  MDB_txn* txn = begin(MDB_RDONLY, shared);
  try {
    work(txn);
  } catch (...) {
    mdb_txn_abort(txn);
    throw;
  }
  mdb_txn_abort(txn);  // read-only: nothing to commit
}

void LmdbEnv::write(const std::function<void(MDB_txn*)>& work) {
  for (int attempt = 0;; ++attempt) {
    int code = MDB_SUCCESS;
    {
      std::shared_lock<std::shared_mutex> shared(resize_mutex_);
      MDB_txn* txn = begin(0, shared);
      try {
        work(txn);
        code = mdb_txn_commit(txn);
      } catch (const LmdbError& e) {
        mdb_txn_abort(txn);
        if (e.code != MDB_MAP_FULL || attempt > 8) throw;
        code = MDB_MAP_FULL;
      } catch (...) {
        mdb_txn_abort(txn);
        throw;
      }
    }
    if (code == MDB_SUCCESS) break;
    if (code != MDB_MAP_FULL || attempt > 8) throw LmdbError("mdb_txn_commit", code);
    grow();
  }
  std::lock_guard<std::mutex> lock(sync_mutex_);
  dirty_ = true;
}

void LmdbEnv::grow() {
  std::unique_lock<std::shared_mutex> exclusive(resize_mutex_);
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  size_t bigger = info.me_mapsize * 2;
  check(mdb_env_set_mapsize(env_, bigger), "mdb_env_set_mapsize");
  log::info("kv map grown", {{"bytes", bigger}});
}

void LmdbEnv::adopt_map_size() {
  std::unique_lock<std::shared_mutex> exclusive(resize_mutex_);
  // 0: the size the other process recorded in the environment (a no-op if adopted meanwhile).
  check(mdb_env_set_mapsize(env_, 0), "mdb_env_set_mapsize");
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  log::info("kv map grown by another process, adopted", {{"bytes", info.me_mapsize}});
}

void LmdbEnv::sync_async(std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    sync_waiters_.push_back(std::move(done));
  }
  sync_wanted_.notify_one();
}

void LmdbEnv::sync_now() {
  check(mdb_env_sync(env_, 1), "mdb_env_sync");
}

void LmdbEnv::run_syncer() {
  std::unique_lock<std::mutex> lock(sync_mutex_);
  while (!stopping_) {
    sync_wanted_.wait_for(lock, kBackgroundSyncInterval,
                          [this] { return stopping_ || !sync_waiters_.empty(); });
    if (sync_waiters_.empty() && !dirty_) continue;
    std::vector<std::function<void()>> waiters;
    waiters.swap(sync_waiters_);
    dirty_ = false;
    lock.unlock();
    int code = mdb_env_sync(env_, 1);
    if (code != MDB_SUCCESS) log::error("kv sync failed", {{"error", mdb_strerror(code)}});
    for (auto& done : waiters) done();
    lock.lock();
  }
}

}  // namespace depot
