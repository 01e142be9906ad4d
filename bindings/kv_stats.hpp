// What /metrics reports of the kv store: the LMDB map's size and use, and each durable queue's
// pending and dead jobs. Reads only: a scrape never creates the store or a queue.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace depot {

struct QueueStats {
  std::string name;
  uint64_t pending = 0;
  uint64_t dead = 0;
};

struct KvStats {
  uint64_t map_size_bytes = 0;
  uint64_t used_pages = 0;  // pages in use up to the last one written (LMDB reuses freed ones)
  uint64_t page_size_bytes = 0;
  std::vector<QueueStats> queues;
};

// The store under `data_dir` when this process has it open (a script opened kv), else nullopt.
// Runs a read transaction: call it where kv reads may run.
std::optional<KvStats> kv_stats(const std::filesystem::path& data_dir);

}  // namespace depot
