// Lua module `kv`: LMDB storage shared by every worker and script generation of the server.
//
//   local db = kv.open("name" [, {durable = true}])
//   db:get(key) → value | nil          db:put(key, value)          db:delete(key) → existed
//   db:exists(key) → boolean           db:count([prefix]) → n
//   db:iter({prefix=, from=, to=, reverse=, limit=}) → { {key=, value=}, ... }
//   db:update(function(tx) ... end) → what fn returned (one atomic read-modify-write)
//   kv.sync()
//
// Values are strings (stored as they are) or tables, numbers and booleans (stored as JSON: a
// table comes back as a table, with json.null for JSON nulls). Keys are strings of 1..511 bytes.
//
// A transaction can never span a yield: every call runs in its own transaction inside the C
// function, and db:update calls fn through a C boundary, so a wait inside fn raises "attempt to
// yield across C-call boundary" and the transaction is aborted (nothing is written).
//
// Durability: a durable handle (the default) returns from a write only once it is on disk; the
// fsync (~0.25 ms) happens on a syncer thread shared by every writer waiting at that moment, and
// the calling task waits meanwhile (outside a task the call blocks). A handle opened with
// {durable = false} returns at once; its writes survive a crash of the process (they are in
// LMDB's file) and reach the disk within ~100 ms, or at kv.sync().
#include <cstring>
#include <memory>
#include <string>

#include "bindings/binding.hpp"
#include "bindings/lmdb_env.hpp"
#include "engine/runtime.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kDbType = "depot.kv.db";
const char* const kTxType = "depot.kv.tx";
constexpr size_t kMaxKey = 511;
constexpr size_t kDefaultMapSize = size_t{1} << 30;

struct Db {
  std::shared_ptr<LmdbEnv> env;
  MDB_dbi dbi;
  bool durable;
};

struct Tx {
  std::shared_ptr<LmdbEnv> env;
  MDB_txn* txn;
  MDB_dbi dbi;
  // Shared by every tx object of one db:update, and outliving it: a tx kept by the script after
  // fn returned must find it false, not a dead stack slot.
  std::shared_ptr<bool> open;
};

struct LuaErrorPending {};  // unwinds a write transaction whose Lua function raised

Db& check_db(lua_State* L) { return *static_cast<Db*>(luaL_checkudata(L, 1, kDbType)); }

Tx& check_tx(lua_State* L) {
  Tx& tx = *static_cast<Tx*>(luaL_checkudata(L, 1, kTxType));
  if (!*tx.open) luaL_error(L, "kv: transaction is closed");
  return tx;
}

std::string_view check_key(lua_State* L, int index, const char* function) {
  std::string_view key = check_string_view(L, index, function, "key");
  if (key.empty() || key.size() > kMaxKey) luaL_error(L, "%s: key must be 1..%d bytes", function, static_cast<int>(kMaxKey));
  return key;
}

// 's' + bytes for strings, 'j' + JSON for the rest (through the json module: one encoder).
std::string encode_value(lua_State* L, int index, const char* function) {
  int type = lua_type(L, index);
  if (type == LUA_TSTRING) {
    size_t length;
    const char* text = lua_tolstring(L, index, &length);
    std::string value = "s";
    value.append(text, length);
    return value;
  }
  if (type != LUA_TTABLE && type != LUA_TNUMBER && type != LUA_TBOOLEAN) {
    luaL_error(L, "%s: value must be a string, table, number or boolean", function);
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "encode");
  lua_pushvalue(L, index);
  lua_call(L, 1, 1);
  size_t length;
  const char* text = lua_tolstring(L, -1, &length);
  std::string value = "j";
  value.append(text, length);
  lua_pop(L, 2);
  return value;
}

void push_value(lua_State* L, const std::string& stored) {
  if (stored.empty() || stored[0] == 's') {
    lua_pushlstring(L, stored.data() + (stored.empty() ? 0 : 1), stored.empty() ? 0 : stored.size() - 1);
    return;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "decode");
  lua_remove(L, -2);
  lua_pushlstring(L, stored.data() + 1, stored.size() - 1);
  lua_call(L, 1, 1);
}

MDB_val as_val(std::string_view bytes) { return MDB_val{bytes.size(), const_cast<char*>(bytes.data())}; }

bool get_in(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string& out) {
  MDB_val k = as_val(key);
  MDB_val v;
  int code = mdb_get(txn, dbi, &k, &v);
  if (code == MDB_NOTFOUND) return false;
  if (code != MDB_SUCCESS) throw LmdbError("mdb_get", code);
  out.assign(static_cast<const char*>(v.mv_data), v.mv_size);
  return true;
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

struct IterOptions {
  std::string prefix, from, to;
  bool reverse = false;
  size_t limit = SIZE_MAX;
};

IterOptions iter_options(lua_State* L, int index) {
  IterOptions options;
  if (!lua_istable(L, index)) return options;
  auto text = [&](const char* field, std::string& out) {
    lua_getfield(L, index, field);
    if (lua_isstring(L, -1)) {
      // With its length: a bound such as key .. "\0" (the first key after `key`) holds a NUL.
      size_t length = 0;
      const char* bytes = lua_tolstring(L, -1, &length);
      out.assign(bytes, length);
    }
    lua_pop(L, 1);
  };
  text("prefix", options.prefix);
  text("from", options.from);
  text("to", options.to);
  lua_getfield(L, index, "reverse");
  options.reverse = lua_toboolean(L, -1);
  lua_getfield(L, index, "limit");
  if (lua_isnumber(L, -1)) options.limit = static_cast<size_t>(lua_tonumber(L, -1));
  lua_pop(L, 2);
  return options;
}

// Key/value pairs in order: from `from` (inclusive) to `to` (exclusive), within `prefix`.
std::vector<std::pair<std::string, std::string>> scan(MDB_txn* txn, MDB_dbi dbi, const IterOptions& options,
                                                      bool keys_only = false) {
  std::vector<std::pair<std::string, std::string>> found;
  MDB_cursor* cursor = nullptr;
  int code = mdb_cursor_open(txn, dbi, &cursor);
  if (code != MDB_SUCCESS) throw LmdbError("mdb_cursor_open", code);
  std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> owner(cursor, mdb_cursor_close);
  std::string low = std::max(options.prefix, options.from);
  std::string high = options.to;
  if (!options.prefix.empty()) {  // the first key after every key with the prefix
    std::string after = options.prefix;
    while (!after.empty() && static_cast<unsigned char>(after.back()) == 0xff) after.pop_back();
    if (!after.empty()) {
      after.back() = static_cast<char>(after.back() + 1);
      if (high.empty() || after < high) high = after;
    }
  }
  MDB_val k, v;
  if (!options.reverse) {
    k = as_val(low);
    code = low.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST) : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  } else if (high.empty()) {
    code = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  } else {
    k = as_val(high);
    code = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    code = code == MDB_SUCCESS ? mdb_cursor_get(cursor, &k, &v, MDB_PREV) : mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  }
  while (code == MDB_SUCCESS && found.size() < options.limit) {
    std::string key(static_cast<const char*>(k.mv_data), k.mv_size);
    if (!high.empty() && key >= high) {
      if (!options.reverse) break;
    } else if (key < low) {
      if (options.reverse) break;
    } else {
      found.emplace_back(std::move(key), keys_only ? std::string() : std::string(static_cast<const char*>(v.mv_data), v.mv_size));
    }
    code = mdb_cursor_get(cursor, &k, &v, options.reverse ? MDB_PREV : MDB_NEXT);
  }
  if (code != MDB_SUCCESS && code != MDB_NOTFOUND) throw LmdbError("mdb_cursor_get", code);
  return found;
}

void push_pairs(lua_State* L, const std::vector<std::pair<std::string, std::string>>& pairs) {
  lua_createtable(L, static_cast<int>(pairs.size()), 0);
  for (size_t i = 0; i < pairs.size(); ++i) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, pairs[i].first.data(), pairs[i].first.size());
    lua_setfield(L, -2, "key");
    push_value(L, pairs[i].second);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
}

// Runs `work`, turning LMDB and other C++ failures into a Lua error naming `function`.
template <typename Work>
void guarded(lua_State* L, const char* function, Work&& work) {
  std::string failure;
  try {
    work();
    return;
  } catch (const std::exception& e) {
    failure = std::string(function) + ": " + e.what();
  }
  luaL_error(L, "%s", failure.c_str());
}

// After a durable write: wait (inside a task) or block (elsewhere) until it is on disk.
// `results` values on top of the stack are returned.
int finish_write(lua_State* L, const std::shared_ptr<LmdbEnv>& env, bool durable, int results) {
  if (!durable) return results;
  Task* task = Task::of_state(L);
  if (task == nullptr) {
    guarded(L, "kv", [&] { env->sync_now(); });
    return results;
  }
  lua_createtable(L, results, 0);
  lua_insert(L, -results - 1);
  for (int i = results; i >= 1; --i) lua_rawseti(L, -i - 1, i);
  int saved = luaL_ref(L, LUA_REGISTRYINDEX);
  TaskHandle waiting(*task);
  env->sync_async([waiting, saved, results] {
    // A task that ended meanwhile (deadline) is not resumed: its state drops the ref.
    waiting.resume([saved, results](lua_State* co) {
      lua_rawgeti(co, LUA_REGISTRYINDEX, saved);
      for (int i = 1; i <= results; ++i) lua_rawgeti(co, -i, i);
      lua_remove(co, -results - 1);
      luaL_unref(co, LUA_REGISTRYINDEX, saved);
      return results;
    });
  });
  return task->suspend(L);
}

// --- db methods ---

int db_get(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.get");
  std::string value;
  bool found = false;
  guarded(L, "kv.get", [&] { db.env->read([&](MDB_txn* txn) { found = get_in(txn, db.dbi, key, value); }); });
  if (!found) return 0;
  push_value(L, value);
  return 1;
}

int db_exists(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.exists");
  std::string ignored;
  bool found = false;
  guarded(L, "kv.exists", [&] { db.env->read([&](MDB_txn* txn) { found = get_in(txn, db.dbi, key, ignored); }); });
  lua_pushboolean(L, found);
  return 1;
}

int db_put(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.put");
  std::string value = encode_value(L, 3, "kv.put");
  guarded(L, "kv.put", [&] { db.env->write([&](MDB_txn* txn) { put_in(txn, db.dbi, key, value); }); });
  return finish_write(L, db.env, db.durable, 0);
}

int db_delete(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.delete");
  bool existed = false;
  guarded(L, "kv.delete", [&] { db.env->write([&](MDB_txn* txn) { existed = delete_in(txn, db.dbi, key); }); });
  lua_pushboolean(L, existed);
  return finish_write(L, db.env, db.durable && existed, 1);
}

int db_iter(lua_State* L) {
  Db& db = check_db(L);
  IterOptions options = iter_options(L, 2);
  std::vector<std::pair<std::string, std::string>> pairs;
  guarded(L, "kv.iter", [&] { db.env->read([&](MDB_txn* txn) { pairs = scan(txn, db.dbi, options); }); });
  push_pairs(L, pairs);
  return 1;
}

int db_count(lua_State* L) {
  Db& db = check_db(L);
  IterOptions options;
  if (lua_isstring(L, 2)) {
    size_t length = 0;
    const char* prefix = lua_tolstring(L, 2, &length);
    options.prefix.assign(prefix, length);
  }
  size_t count = 0;
  guarded(L, "kv.count", [&] {
    db.env->read([&](MDB_txn* txn) {
      if (options.prefix.empty()) {
        MDB_stat stat;
        mdb_stat(txn, db.dbi, &stat);
        count = stat.ms_entries;
      } else {
        count = scan(txn, db.dbi, options, true).size();
      }
    });
  });
  lua_pushinteger(L, static_cast<lua_Integer>(count));
  return 1;
}

void push_tx(lua_State* L, const std::shared_ptr<LmdbEnv>& env, MDB_txn* txn, MDB_dbi dbi,
             std::shared_ptr<bool> open) {
  new (lua_newuserdata(L, sizeof(Tx))) Tx{env, txn, dbi, std::move(open)};
  luaL_getmetatable(L, kTxType);
  lua_setmetatable(L, -2);
}

int db_update(lua_State* L) {
  Db& db = check_db(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  bool failed = false;
  std::string lmdb_failure;
  try {
    db.env->write([&](MDB_txn* txn) {
      lua_settop(L, 2);  // a retry after the map grew starts clean
      auto open = std::make_shared<bool>(true);
      lua_pushvalue(L, 2);
      push_tx(L, db.env, txn, db.dbi, open);
      // Through a C boundary: a yield inside fn fails instead of holding the transaction.
      int status = lua_pcall(L, 1, LUA_MULTRET, 0);
      *open = false;
      if (status != 0) throw LuaErrorPending{};
    });
  } catch (const LuaErrorPending&) {
    failed = true;
  } catch (const std::exception& e) {
    lmdb_failure = std::string("kv.update: ") + e.what();
  }
  if (failed) return lua_error(L);  // the error fn raised, transaction aborted
  if (!lmdb_failure.empty()) luaL_error(L, "%s", lmdb_failure.c_str());
  return finish_write(L, db.env, db.durable, lua_gettop(L) - 2);
}

// --- tx methods (inside db:update) ---

int tx_get(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string value;
  bool found = false;
  guarded(L, "tx:get", [&] { found = get_in(tx.txn, tx.dbi, check_key(L, 2, "tx:get"), value); });
  if (!found) return 0;
  push_value(L, value);
  return 1;
}

int tx_exists(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string ignored;
  bool found = false;
  guarded(L, "tx:exists", [&] { found = get_in(tx.txn, tx.dbi, check_key(L, 2, "tx:exists"), ignored); });
  lua_pushboolean(L, found);
  return 1;
}

int tx_put(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string_view key = check_key(L, 2, "tx:put");
  std::string value = encode_value(L, 3, "tx:put");
  guarded(L, "tx:put", [&] { put_in(tx.txn, tx.dbi, key, value); });
  return 0;
}

int tx_delete(lua_State* L) {
  Tx& tx = check_tx(L);
  bool existed = false;
  guarded(L, "tx:delete", [&] { existed = delete_in(tx.txn, tx.dbi, check_key(L, 2, "tx:delete")); });
  lua_pushboolean(L, existed);
  return 1;
}

int tx_iter(lua_State* L) {
  Tx& tx = check_tx(L);
  IterOptions options = iter_options(L, 2);
  std::vector<std::pair<std::string, std::string>> pairs;
  guarded(L, "tx:iter", [&] { pairs = scan(tx.txn, tx.dbi, options); });
  push_pairs(L, pairs);
  return 1;
}

// tx:db(name): the same transaction on another named database.
int tx_db(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string name = luaL_checkstring(L, 2);
  MDB_dbi dbi = 0;
  guarded(L, "tx:db", [&] {
    int code = mdb_dbi_open(tx.txn, name.c_str(), MDB_CREATE, &dbi);
    if (code != MDB_SUCCESS) throw LmdbError("mdb_dbi_open", code);
  });
  push_tx(L, tx.env, tx.txn, dbi, tx.open);
  return 1;
}

// --- module ---

int kv_open(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  if (name.empty() || name.size() > 100) luaL_error(L, "kv.open: name must be 1..100 characters");
  bool durable = true;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "durable");
    if (!lua_isnil(L, -1)) durable = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  BindingContext& context = binding_context(L);
  size_t map_size = kDefaultMapSize;
  if (context.config.contains("kv") && context.config["kv"].contains("map_size")) {
    map_size = context.config["kv"]["map_size"].get<size_t>();
  }
  std::shared_ptr<LmdbEnv> env;
  MDB_dbi dbi = 0;
  guarded(L, "kv.open", [&] {
    env = LmdbEnv::open(context.data_dir / "kv", map_size);
    dbi = env->database(name);
  });
  new (lua_newuserdata(L, sizeof(Db))) Db{std::move(env), dbi, durable};
  luaL_getmetatable(L, kDbType);
  lua_setmetatable(L, -2);
  return 1;
}

int kv_sync(lua_State* L) {
  BindingContext& context = binding_context(L);
  guarded(L, "kv.sync", [&] { LmdbEnv::open(context.data_dir / "kv", kDefaultMapSize)->sync_now(); });
  return 0;
}

template <typename T>
int destroy(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

}  // namespace

int open_kv(lua_State* L) {
  const luaL_Reg db_methods[] = {
      {"get", db_get},       {"put", db_put},     {"delete", db_delete}, {"exists", db_exists},
      {"iter", db_iter},     {"count", db_count}, {"update", db_update}, {nullptr, nullptr},
  };
  const luaL_Reg tx_methods[] = {
      {"get", tx_get},   {"put", tx_put}, {"delete", tx_delete}, {"exists", tx_exists},
      {"iter", tx_iter}, {"db", tx_db},   {nullptr, nullptr},
  };
  define_metatable(L, kDbType, db_methods, destroy<Db>);
  define_metatable(L, kTxType, tx_methods, destroy<Tx>);
  const luaL_Reg functions[] = {{"open", kv_open}, {"sync", kv_sync}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
