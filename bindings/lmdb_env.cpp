// Shared LMDB environments: map growth, the writer thread's shared commits, group-commit syncing
// (see lmdb_env.hpp).
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
  writer_ = std::thread([this] { run_writer(); });
  syncer_ = std::thread([this] { run_syncer(); });
}

LmdbEnv::~LmdbEnv() {
  // The writer first: what it still commits may queue fsyncs for the syncer.
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    writer_stopping_ = true;
  }
  write_wanted_.notify_all();
  writer_.join();
  {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    stopping_ = true;
  }
  sync_wanted_.notify_all();
  syncer_.join();
  mdb_env_sync(env_, 1);
  mdb_env_close(env_);
}

MDB_dbi LmdbWriting::database(const std::string& name) {
  if (std::optional<MDB_dbi> known = env_.opened_database(name)) return *known;
  for (const auto& [opened_name, dbi] : opened_) {
    if (opened_name == name) return dbi;
  }
  MDB_dbi dbi = 0;
  check(mdb_dbi_open(txn_, name.c_str(), MDB_CREATE, &dbi), "mdb_dbi_open");
  opened_.emplace_back(name, dbi);
  return dbi;
}

MDB_dbi LmdbEnv::database(const std::string& name) {
  if (std::optional<MDB_dbi> known = opened_database(name)) return *known;
  MDB_dbi dbi = 0;
  write([&](LmdbWriting& writing) { dbi = writing.database(name); });
  return dbi;
}

std::optional<MDB_dbi> LmdbEnv::opened_database(const std::string& name) {
  std::lock_guard<std::mutex> lock(dbi_mutex_);
  auto found = databases_.find(name);
  if (found == databases_.end()) return std::nullopt;
  return found->second;
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

void LmdbEnv::write(const std::function<void(LmdbWriting&)>& work) {
  for (int attempt = 0;; ++attempt) {
    int code = MDB_SUCCESS;
    std::vector<std::pair<std::string, MDB_dbi>> opened;
    {
      std::shared_lock<std::shared_mutex> shared(resize_mutex_);
      MDB_txn* txn = begin(0, shared);
      LmdbWriting writing(*this, txn);
      try {
        work(writing);
        code = mdb_txn_commit(txn);
      } catch (const LmdbError& e) {
        mdb_txn_abort(txn);
        if (e.code != MDB_MAP_FULL || attempt > 8) throw;
        code = MDB_MAP_FULL;
      } catch (...) {
        mdb_txn_abort(txn);
        throw;
      }
      opened = std::move(writing.opened_);
    }
    if (code == MDB_SUCCESS) {
      std::lock_guard<std::mutex> lock(dbi_mutex_);
      for (auto& [name, dbi] : opened) databases_.emplace(std::move(name), dbi);
      break;
    }
    if (code != MDB_MAP_FULL || attempt > 8) throw LmdbError("mdb_txn_commit", code);
    grow();
  }
  std::lock_guard<std::mutex> lock(sync_mutex_);
  dirty_ = true;
}

void LmdbEnv::write_async(std::unique_ptr<LmdbBatch> batch) {
  {
    std::lock_guard<std::mutex> lock(write_mutex_);
    write_queue_.push_back(std::move(batch));
  }
  write_wanted_.notify_one();
}

void LmdbEnv::run_writer() {
  std::unique_lock<std::mutex> lock(write_mutex_);
  for (;;) {
    write_wanted_.wait(lock, [this] { return writer_stopping_ || !write_queue_.empty(); });
    if (write_queue_.empty()) return;  // stopping, and everything queued is committed
    // Everything queued while the last round committed: one transaction, one commit.
    std::vector<std::unique_ptr<LmdbBatch>> batches;
    batches.swap(write_queue_);
    lock.unlock();
    commit_together(batches);
    lock.lock();
  }
}

void LmdbEnv::commit_together(std::vector<std::unique_ptr<LmdbBatch>>& batches) {
  std::vector<bool> changed(batches.size());
  std::string error;
  try {
    write([&](LmdbWriting& writing) {
      for (size_t i = 0; i < batches.size(); ++i) changed[i] = batches[i]->apply(writing);
    });
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty() && batches.size() > 1) {
    // The failed transaction is gone whole: each batch alone, to fail only the failing ones.
    for (auto& batch : batches) {
      std::vector<std::unique_ptr<LmdbBatch>> alone;
      alone.push_back(std::move(batch));
      commit_together(alone);
    }
    return;
  }
  if (!error.empty()) log::debug("kv write failed", {{"error", error}});
  auto durable = std::make_shared<std::vector<std::unique_ptr<LmdbBatch>>>();
  for (size_t i = 0; i < batches.size(); ++i) {
    if (error.empty() && changed[i] && batches[i]->durable()) {
      durable->push_back(std::move(batches[i]));
    } else {
      batches[i]->committed(error);
    }
  }
  if (durable->empty()) return;
  sync_async([durable](const std::string& sync_error) {
    for (auto& batch : *durable) batch->committed(sync_error);
  });
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

void LmdbEnv::sync_async(std::function<void(const std::string&)> done) {
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
  for (;;) {
    sync_wanted_.wait_for(lock, kBackgroundSyncInterval,
                          [this] { return stopping_ || !sync_waiters_.empty(); });
    if (sync_waiters_.empty() && !dirty_) {
      if (stopping_) return;  // only once every waiter queued before the stop has its fsync
      continue;
    }
    std::vector<std::function<void(const std::string&)>> waiters;
    waiters.swap(sync_waiters_);
    dirty_ = false;
    lock.unlock();
    int code = mdb_env_sync(env_, 1);
    // A durable write whose fsync failed is not on disk: its caller gets the error, never a
    // success (after a failed fsync the kernel may have dropped the dirty pages).
    std::string error;
    if (code != MDB_SUCCESS) {
      error = std::string("kv sync: ") + mdb_strerror(code);
      log::error("kv sync failed", {{"error", mdb_strerror(code)}});
    }
    for (auto& done : waiters) done(error);
    lock.lock();
  }
}

}  // namespace depot
