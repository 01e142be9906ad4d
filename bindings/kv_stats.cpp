// kv and queue figures for /metrics (see kv_stats.hpp). The queue layout read here is
// bindings/queue.lua's: database "queue:<name>" with its job count under "#count" (a number in
// kv's encoding of it, 'j' + JSON), and "queue:<name>:dead" holding one entry per dead job.
#include "bindings/kv_stats.hpp"

#include <cstdlib>

#include "bindings/lmdb_env.hpp"

namespace depot {
namespace {
constexpr std::string_view kQueuePrefix = "queue:";
constexpr std::string_view kDeadSuffix = ":dead";

std::string_view as_view(const MDB_val& value) {
  return std::string_view(static_cast<const char*>(value.mv_data), value.mv_size);
}

// Names of the queues: the main database lists every named database as a key.
std::vector<std::string> queue_names(LmdbEnv& env) {
  std::vector<std::string> names;
  env.read([&](MDB_txn* txn) {
    MDB_dbi main = 0;
    if (mdb_dbi_open(txn, nullptr, 0, &main) != MDB_SUCCESS) return;
    MDB_cursor* cursor = nullptr;
    if (mdb_cursor_open(txn, main, &cursor) != MDB_SUCCESS) return;
    MDB_val key{kQueuePrefix.size(), const_cast<char*>(kQueuePrefix.data())};
    MDB_val value{};
    for (int code = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE); code == MDB_SUCCESS;
         code = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
      std::string_view name = as_view(key);
      if (name.substr(0, kQueuePrefix.size()) != kQueuePrefix) break;
      bool dead_list = name.size() >= kDeadSuffix.size() &&
                       name.substr(name.size() - kDeadSuffix.size()) == kDeadSuffix;
      if (!dead_list) names.emplace_back(name.substr(kQueuePrefix.size()));
    }
    mdb_cursor_close(cursor);
  });
  return names;
}
}  // namespace

std::optional<KvStats> kv_stats(const std::filesystem::path& data_dir) {
  std::shared_ptr<LmdbEnv> env = LmdbEnv::find_open(data_dir / "kv");
  if (!env) return std::nullopt;
  KvStats stats;
  MDB_envinfo info;
  MDB_stat main_stat;
  mdb_env_info(env->env(), &info);
  mdb_env_stat(env->env(), &main_stat);
  stats.map_size_bytes = info.me_mapsize;
  stats.used_pages = info.me_last_pgno + 1;
  stats.page_size_bytes = main_stat.ms_psize;
  for (const std::string& name : queue_names(*env)) {
    std::string jobs = std::string(kQueuePrefix) + name;
    MDB_dbi pending = env->database(jobs);
    MDB_dbi dead = env->database(jobs + std::string(kDeadSuffix));
    QueueStats queue{name};
    env->read([&](MDB_txn* txn) {
      MDB_val key{6, const_cast<char*>("#count")};
      MDB_val value{};
      if (mdb_get(txn, pending, &key, &value) == MDB_SUCCESS) {
        std::string_view count = as_view(value);
        if (!count.empty() && count[0] == 'j') count.remove_prefix(1);  // kv's tag for JSON values
        queue.pending = std::strtoull(std::string(count).c_str(), nullptr, 10);
      }
      MDB_stat dead_stat;
      if (mdb_stat(txn, dead, &dead_stat) == MDB_SUCCESS) queue.dead = dead_stat.ms_entries;
    });
    stats.queues.push_back(std::move(queue));
  }
  return stats;
}

}  // namespace depot
