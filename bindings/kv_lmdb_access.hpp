// kv's keys in an LMDB transaction, bytes in and bytes out, for every LMDB path of the backend
// (kv_lmdb.cpp's calls, kv_lmdb_update.cpp's snapshots and checks); and the batch a kv call
// hands the writer thread, whose outcome ends the call.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "bindings/kv_backend.hpp"
#include "bindings/lmdb_env.hpp"

namespace depot {

// The stored bytes of `key`, pointing into the map (valid while `txn` is open), or nullopt.
std::optional<std::string_view> find_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key);
std::optional<std::string> get_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key);
void put_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key, const std::string& value);
// Whether the key existed.
bool delete_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key);
// Key/value pairs of `range` in order (keys only, values empty, with `keys_only`).
KvPairs scan_in(MDB_txn* txn, MDB_dbi dbi, const KvRange& range, bool keys_only = false);

// A kv call's batch for the writer thread: `apply` fills `outcome_`, which goes to the call's
// `done` once committed (or the error instead, if the batch failed).
class KvLmdbBatch : public LmdbBatch {
 public:
  KvLmdbBatch(bool durable, KvDone done) : LmdbBatch(durable), done_(std::move(done)) {}
  void committed(const std::string& error) override;

 protected:
  KvOutcome outcome_;

 private:
  KvDone done_;
};

}  // namespace depot
