// Buffered writes of db:update's fn and their overlay on the store's rows (see
// kv_write_buffer.hpp).
#include "bindings/kv_write_buffer.hpp"

#include <algorithm>

namespace depot {

const std::optional<std::string>* KvWriteBuffer::find(const std::string& db,
                                                      std::string_view key) const {
  auto written = writes_.find(Key{db, std::string(key)});
  return written == writes_.end() ? nullptr : &written->second;
}

void KvWriteBuffer::put(const std::string& db, std::string_view key, const std::string& value) {
  writes_[Key{db, std::string(key)}] = value;
}

void KvWriteBuffer::remove(const std::string& db, std::string_view key) {
  writes_[Key{db, std::string(key)}] = std::nullopt;
}

KvRange KvWriteBuffer::stored_range(const std::string& db, const KvRange& range) const {
  KvRange stored = range;
  if (range.limit == SIZE_MAX) return stored;
  size_t writes_here = 0;
  for (const auto& entry : writes_) writes_here += entry.first.first == db;
  stored.limit = range.limit + writes_here;
  return stored;
}

KvPairs KvWriteBuffer::overlay(const std::string& db, const KvRange& range,
                               const KvPairs& stored) const {
  if (writes_.empty()) return stored;
  std::string low = range.low();
  std::string high = range.high();
  std::map<std::string, std::string> merged;
  for (const auto& [key, value] : stored) merged.emplace(key, value);
  for (auto written = writes_.lower_bound(Key{db, low});
       written != writes_.end() && written->first.first == db; ++written) {
    const std::string& key = written->first.second;
    if (!high.empty() && key >= high) break;
    if (written->second) {
      merged[key] = *written->second;
    } else {
      merged.erase(key);
    }
  }
  KvPairs pairs;
  auto take = [&](const auto& entry) {
    if (pairs.size() < range.limit) pairs.emplace_back(entry.first, entry.second);
  };
  if (range.reverse) {
    std::for_each(merged.rbegin(), merged.rend(), take);
  } else {
    std::for_each(merged.begin(), merged.end(), take);
  }
  return pairs;
}

}  // namespace depot
