// The writes of one run of db:update's fn, held back until its commit and seen by fn's own later
// reads: for backends whose fn runs against a snapshot rather than inside the write transaction
// (PostgreSQL always; LMDB inside a task, where the writer thread commits them).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bindings/kv_backend.hpp"

namespace depot {

class KvWriteBuffer {
 public:
  using Key = std::pair<std::string, std::string>;  // database, key
  // What each written key became; nullopt: deleted. Keys are distinct, so any order of applying
  // them gives the same state.
  using Writes = std::map<Key, std::optional<std::string>>;

  // What fn wrote at `key` (nullopt inside: it deleted it), or null if it left the key alone.
  const std::optional<std::string>* find(const std::string& db, std::string_view key) const;
  void put(const std::string& db, std::string_view key, const std::string& value);
  void remove(const std::string& db, std::string_view key);

  // The stored rows a scan of `range` must read: `limit` plus the writes to db, which is enough
  // for the overlay to stay exact (deletes can hide at most that many stored rows).
  KvRange stored_range(const std::string& db, const KvRange& range) const;
  // `range` as fn sees it: `stored` (the rows of stored_range) with fn's writes laid over.
  KvPairs overlay(const std::string& db, const KvRange& range, const KvPairs& stored) const;

  const Writes& writes() const { return writes_; }
  bool empty() const { return writes_.empty(); }

 private:
  Writes writes_;
};

}  // namespace depot
