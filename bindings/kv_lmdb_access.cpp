// kv's keys in an LMDB transaction (see kv_lmdb_access.hpp).
#include "bindings/kv_lmdb_access.hpp"

#include <memory>

namespace depot {
namespace {

MDB_val as_val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view as_view(const MDB_val& val) {
  return std::string_view(static_cast<const char*>(val.mv_data), val.mv_size);
}

}  // namespace

std::optional<std::string_view> find_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = as_val(key);
  MDB_val v;
  int code = mdb_get(txn, dbi, &k, &v);
  if (code == MDB_NOTFOUND) return std::nullopt;
  if (code != MDB_SUCCESS) throw LmdbError("mdb_get", code);
  return as_view(v);
}

std::optional<std::string> get_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  std::optional<std::string_view> found = find_in(txn, dbi, key);
  if (!found) return std::nullopt;
  return std::string(*found);
}

void put_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key, const std::string& value) {
  MDB_val k = as_val(key);
  MDB_val v = as_val(value);
  int code = mdb_put(txn, dbi, &k, &v, 0);
  if (code != MDB_SUCCESS) throw LmdbError("mdb_put", code);
}

bool delete_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = as_val(key);
  int code = mdb_del(txn, dbi, &k, nullptr);
  if (code == MDB_NOTFOUND) return false;
  if (code != MDB_SUCCESS) throw LmdbError("mdb_del", code);
  return true;
}

KvPairs scan_in(MDB_txn* txn, MDB_dbi dbi, const KvRange& range, bool keys_only) {
  KvPairs found;
  MDB_cursor* cursor = nullptr;
  int code = mdb_cursor_open(txn, dbi, &cursor);
  if (code != MDB_SUCCESS) throw LmdbError("mdb_cursor_open", code);
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> owner(cursor, mdb_cursor_close);
  std::string low = range.low();
  std::string high = range.high();
  MDB_val k, v;
  if (!range.reverse) {
    k = as_val(low);
    code = low.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
                       : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  } else if (high.empty()) {
    code = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  } else {
    k = as_val(high);
    code = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    code = code == MDB_SUCCESS ? mdb_cursor_get(cursor, &k, &v, MDB_PREV)
                               : mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  }
  while (code == MDB_SUCCESS && found.size() < range.limit) {
    std::string key(as_view(k));
    if (!high.empty() && key >= high) {
      if (!range.reverse) break;
    } else if (key < low) {
      if (range.reverse) break;
    } else {
      found.emplace_back(std::move(key), keys_only ? std::string() : std::string(as_view(v)));
    }
    code = mdb_cursor_get(cursor, &k, &v, range.reverse ? MDB_PREV : MDB_NEXT);
  }
  if (code != MDB_SUCCESS && code != MDB_NOTFOUND) throw LmdbError("mdb_cursor_get", code);
  return found;
}

void KvLmdbBatch::committed(const std::string& error) {
  if (!error.empty()) {
    outcome_ = KvOutcome{};
    outcome_.error = error;
  }
  done_(std::move(outcome_));
}

}  // namespace depot
