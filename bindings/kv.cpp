// Lua module `kv`: named key/value databases on the server's kv backend — LMDB in the data
// directory, or PostgreSQL shared by every replica (bindings/kv_backend.hpp). The API is
// documented in docs/lua-api.md (kv); this file turns Lua values into the backend's bytes and
// back, and a backend's completion into the calling task's results.
//
// Values are strings (stored as they are) or tables, numbers and booleans (stored as JSON: a
// table comes back as a table, with json.null for JSON nulls), tagged 's' and 'j' on every
// backend. Keys are strings of 1..511 bytes.
//
// A backend completes at once (LMDB's reads, and any LMDB call outside a task) or later (LMDB's
// writes inside a task, once its writer thread committed them; every call on a server): then the
// task waits, and when it is resumed the results come back through bindings/kv_methods.lua, which
// raises `failed, message` (a resumed C function cannot raise) and loops db:update's steps until
// fn's writes commit.
//
// db:update calls fn through a C boundary, so a wait inside fn raises "attempt to yield across
// C-call boundary" and nothing is written; db writes (and another db:update) inside fn raise at
// once on every backend rather than deadlocking LMDB's writer lock.
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "bindings/binding.hpp"
#include "bindings/kv_backend.hpp"
#include "engine/runtime.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kDbType = "depot.kv.db";
const char* const kTxType = "depot.kv.tx";
const char* const kAttemptType = "depot.kv.attempt";
constexpr size_t kMaxKey = 511;
// kv_methods.lua's markers: a call failed (the message follows), or db:update must step again.
const char kFailed = 'f';
const char kAgain = 'a';

// How many db:update functions run on this thread right now (nested inside one another).
thread_local int update_depth = 0;

struct Db {
  std::shared_ptr<KvBackend> backend;
  std::string name;
  bool durable;
};

struct Tx {
  KvTransaction* transaction;
  std::string db;
  // Shared by every tx object of one run of fn, and outliving it: a tx kept by the script after
  // fn returned must find it false, not a dead transaction.
  std::shared_ptr<bool> open;
};

struct Attempt {
  std::shared_ptr<KvAttempt> state;
};

Db& check_db(lua_State* L) {
  return *static_cast<Db*>(luaL_checkudata(L, 1, kDbType));
}

Tx& check_tx(lua_State* L) {
  Tx& tx = *static_cast<Tx*>(luaL_checkudata(L, 1, kTxType));
  if (!*tx.open) luaL_error(L, "kv: transaction is closed");
  return tx;
}

std::string_view check_key(lua_State* L, int index, const char* function) {
  std::string_view key = check_string_view(L, index, function, "key");
  if (key.empty() || key.size() > kMaxKey) {
    luaL_error(L, "%s: key must be 1..%d bytes", function, static_cast<int>(kMaxKey));
  }
  return key;
}

// Writes to the store from inside fn would bypass its transaction (and deadlock LMDB).
void refuse_inside_update(lua_State* L, const char* function) {
  if (update_depth > 0) {
    luaL_error(L, "%s: not allowed inside db:update's function (use its tx argument)", function);
  }
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
    lua_pushlstring(L, stored.data() + (stored.empty() ? 0 : 1),
                    stored.empty() ? 0 : stored.size() - 1);
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

KvRange iter_options(lua_State* L, int index) {
  KvRange range;
  if (!lua_istable(L, index)) return range;
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
  text("prefix", range.prefix);
  text("from", range.from);
  text("to", range.to);
  lua_getfield(L, index, "reverse");
  range.reverse = lua_toboolean(L, -1);
  lua_getfield(L, index, "limit");
  if (lua_isnumber(L, -1)) range.limit = static_cast<size_t>(lua_tonumber(L, -1));
  lua_pop(L, 2);
  return range;
}

void push_pairs(lua_State* L, const KvPairs& pairs) {
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

// Runs `work`, turning C++ failures (LMDB's, "not fetched yet") into a Lua error naming `function`.
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

using PushOutcome = std::function<int(lua_State* L, KvOutcome& outcome)>;

int push_outcome(lua_State* L, const char* function, KvOutcome& outcome, const PushOutcome& push) {
  if (outcome.error.empty()) return push(L, outcome);
  lua_pushlightuserdata(L, const_cast<char*>(&kFailed));
  lua_pushfstring(L, "%s: %s", function, outcome.error.c_str());
  return 2;
}

// Starts a backend call and returns its results: at once if it completed during the call, or
// by suspending the task until its completion (from any thread) resumes it.
int deliver(lua_State* L, const char* function, const std::function<void(KvDone)>& start,
            PushOutcome push) {
  struct Pending {
    std::mutex mutex;
    bool returned = false;
    std::optional<KvOutcome> outcome;
  };
  auto pending = std::make_shared<Pending>();
  Task* task = Task::of_state(L);
  std::optional<TaskHandle> waiting;
  if (task != nullptr) waiting.emplace(*task);
  start([pending, waiting, push, function](KvOutcome outcome) {
    {
      std::lock_guard<std::mutex> lock(pending->mutex);
      if (!pending->returned) {
        pending->outcome = std::move(outcome);
        return;
      }
    }
    // A task that ended meanwhile (its deadline) is not resumed; the outcome is dropped.
    waiting->resume([outcome = std::move(outcome), push, function](lua_State* co) mutable {
      return push_outcome(co, function, outcome, push);
    });
  });
  {
    std::lock_guard<std::mutex> lock(pending->mutex);
    pending->returned = true;
  }
  if (pending->outcome) return push_outcome(L, function, *pending->outcome, push);
  if (task == nullptr)
    return luaL_error(L, "%s: the backend did not complete outside a task", function);
  return task->suspend(L);
}

// Inside a task the call may wait; outside any task (load time, `depot admin`) it blocks. In a
// coroutine the script made inside a task it can do neither on a backend that waits.
KvCall call_of(lua_State* L, const Db& db, const char* function) {
  Task* task = Task::of_state(L);
  if (task == nullptr && db.backend->waits() && Task::running_in(L) != nullptr) {
    luaL_error(L,
               "%s: not available inside a coroutine the script created (kv waits for its "
               "server there; call it from the handler itself)",
               function);
  }
  return KvCall{task ? &task->runtime().worker() : nullptr, db.name, db.durable};
}

int push_nothing(lua_State*, KvOutcome&) {
  return 0;
}

int push_flag(lua_State* L, KvOutcome& outcome) {
  lua_pushboolean(L, outcome.flag);
  return 1;
}

// --- db methods ---

int db_get(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.get");
  KvCall call = call_of(L, db, "kv.get");
  return deliver(
      L, "kv.get", [&](KvDone done) { db.backend->get(call, key, std::move(done)); },
      [](lua_State* co, KvOutcome& outcome) {
        if (!outcome.value) return 0;
        push_value(co, *outcome.value);
        return 1;
      });
}

int db_exists(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.exists");
  KvCall call = call_of(L, db, "kv.exists");
  return deliver(
      L, "kv.exists", [&](KvDone done) { db.backend->exists(call, key, std::move(done)); },
      push_flag);
}

int db_put(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.put");
  std::string value = encode_value(L, 3, "kv.put");
  refuse_inside_update(L, "kv.put");
  KvCall call = call_of(L, db, "kv.put");
  return deliver(
      L, "kv.put",
      [&](KvDone done) { db.backend->put(call, key, std::move(value), std::move(done)); },
      push_nothing);
}

int db_delete(lua_State* L) {
  Db& db = check_db(L);
  std::string_view key = check_key(L, 2, "kv.delete");
  refuse_inside_update(L, "kv.delete");
  KvCall call = call_of(L, db, "kv.delete");
  return deliver(
      L, "kv.delete", [&](KvDone done) { db.backend->remove(call, key, std::move(done)); },
      push_flag);
}

int db_iter(lua_State* L) {
  Db& db = check_db(L);
  KvRange range = iter_options(L, 2);
  KvCall call = call_of(L, db, "kv.iter");
  return deliver(
      L, "kv.iter", [&](KvDone done) { db.backend->scan(call, range, std::move(done)); },
      [](lua_State* co, KvOutcome& outcome) {
        push_pairs(co, outcome.pairs);
        return 1;
      });
}

int db_count(lua_State* L) {
  Db& db = check_db(L);
  std::string prefix;
  if (lua_isstring(L, 2)) {
    size_t length = 0;
    const char* bytes = lua_tolstring(L, 2, &length);
    prefix.assign(bytes, length);
  }
  KvCall call = call_of(L, db, "kv.count");
  return deliver(
      L, "kv.count", [&](KvDone done) { db.backend->count(call, prefix, std::move(done)); },
      [](lua_State* co, KvOutcome& outcome) {
        lua_pushinteger(co, static_cast<lua_Integer>(outcome.count));
        return 1;
      });
}

void push_tx(lua_State* L, KvTransaction* transaction, std::string db, std::shared_ptr<bool> open) {
  new (lua_newuserdata(L, sizeof(Tx))) Tx{transaction, std::move(db), std::move(open)};
  luaL_getmetatable(L, kTxType);
  lua_setmetatable(L, -2);
}

// db:update's attempt, made once per db:update by kv_methods.lua and passed to every step.
int db_new_attempt(lua_State* L) {
  Db& db = check_db(L);
  new (lua_newuserdata(L, sizeof(Attempt))) Attempt{db.backend->new_attempt()};
  luaL_getmetatable(L, kAttemptType);
  lua_setmetatable(L, -2);
  return 1;
}

// One step of db:update(fn) (kv_methods.lua loops): fn's results, `again`, or `failed, error`.
int db_update_step(lua_State* L) {
  Db& db = check_db(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Attempt& attempt = *static_cast<Attempt*>(luaL_checkudata(L, 3, kAttemptType));
  if (update_depth > 0) {
    luaL_error(L,
               "kv.update: nested db:update inside another db:update's function on the same "
               "thread (use the outer tx; tx:db(name) reaches other databases)");
  }
  lua_settop(L, 3);
  // fn's results (or its error) stay in this table until the step's outcome is known.
  lua_newtable(L);
  int results = lua_gettop(L);
  bool raised = false;
  KvFunction run = [&](KvTransaction& transaction) {
    lua_settop(L, results);
    auto open = std::make_shared<bool>(true);
    lua_pushvalue(L, 2);
    push_tx(L, &transaction, db.name, open);
    ++update_depth;
    // Through a C boundary: a yield inside fn fails instead of holding the transaction.
    int status = lua_pcall(L, 1, LUA_MULTRET, 0);
    --update_depth;
    *open = false;
    raised = status != 0;
    int count = lua_gettop(L) - results;
    for (int i = count; i >= 1; --i) lua_rawseti(L, results, i);
    lua_pushinteger(L, count);
    lua_setfield(L, results, "n");
    return !raised;
  };
  lua_pushvalue(L, results);
  int saved = luaL_ref(L, LUA_REGISTRYINDEX);
  KvCall call = call_of(L, db, "kv.update");
  std::shared_ptr<KvAttempt> state = attempt.state;
  return deliver(
      L, "kv.update", [&](KvDone done) { db.backend->update(call, state, run, std::move(done)); },
      [saved](lua_State* co, KvOutcome& outcome) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, saved);
        luaL_unref(co, LUA_REGISTRYINDEX, saved);
        int table = lua_gettop(co);
        if (outcome.flag) {
          lua_pushlightuserdata(co, const_cast<char*>(&kAgain));
          return 1;
        }
        if (outcome.raised) {
          lua_pushlightuserdata(co, const_cast<char*>(&kFailed));
          lua_rawgeti(co, table, 1);  // the error fn raised, as it raised it
          return 2;
        }
        lua_getfield(co, table, "n");
        int count = static_cast<int>(lua_tointeger(co, -1));
        lua_pop(co, 1);
        for (int i = 1; i <= count; ++i) lua_rawgeti(co, table, i);
        return count;
      });
}

// --- tx methods (inside db:update's fn: they never wait) ---

int tx_get(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string_view key = check_key(L, 2, "tx:get");
  std::optional<std::string> value;
  guarded(L, "tx:get", [&] { value = tx.transaction->get(tx.db, key); });
  if (!value) return 0;
  push_value(L, *value);
  return 1;
}

int tx_exists(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string_view key = check_key(L, 2, "tx:exists");
  bool found = false;
  guarded(L, "tx:exists", [&] { found = tx.transaction->get(tx.db, key).has_value(); });
  lua_pushboolean(L, found);
  return 1;
}

int tx_put(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string_view key = check_key(L, 2, "tx:put");
  std::string value = encode_value(L, 3, "tx:put");
  guarded(L, "tx:put", [&] { tx.transaction->put(tx.db, key, value); });
  return 0;
}

int tx_delete(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string_view key = check_key(L, 2, "tx:delete");
  bool existed = false;
  guarded(L, "tx:delete", [&] { existed = tx.transaction->remove(tx.db, key); });
  lua_pushboolean(L, existed);
  return 1;
}

int tx_iter(lua_State* L) {
  Tx& tx = check_tx(L);
  KvRange range = iter_options(L, 2);
  KvPairs pairs;
  guarded(L, "tx:iter", [&] { pairs = tx.transaction->scan(tx.db, range); });
  push_pairs(L, pairs);
  return 1;
}

// tx:db(name): the same transaction on another named database.
int tx_db(lua_State* L) {
  Tx& tx = check_tx(L);
  std::string name = luaL_checkstring(L, 2);
  push_tx(L, tx.transaction, std::move(name), tx.open);
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
  std::shared_ptr<KvBackend> backend;
  guarded(L, "kv.open", [&] {
    backend = kv_backend(context.data_dir, context.config);
    backend->open_database(name);
  });
  new (lua_newuserdata(L, sizeof(Db))) Db{std::move(backend), std::move(name), durable};
  luaL_getmetatable(L, kDbType);
  lua_setmetatable(L, -2);
  return 1;
}

int kv_sync(lua_State* L) {
  BindingContext& context = binding_context(L);
  std::shared_ptr<KvBackend> backend;
  guarded(L, "kv.sync", [&] { backend = kv_backend(context.data_dir, context.config); });
  Task* task = Task::of_state(L);
  Worker* worker = task ? &task->runtime().worker() : nullptr;
  return deliver(
      L, "kv.sync", [&](KvDone done) { backend->sync(worker, std::move(done)); }, push_nothing);
}

template <typename T>
int destroy(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

}  // namespace

int open_kv(lua_State* L) {
  const luaL_Reg db_methods[] = {
      {"get", db_get},   {"put", db_put},     {"delete", db_delete}, {"exists", db_exists},
      {"iter", db_iter}, {"count", db_count}, {nullptr, nullptr},
  };
  const luaL_Reg tx_methods[] = {
      {"get", tx_get},   {"put", tx_put}, {"delete", tx_delete}, {"exists", tx_exists},
      {"iter", tx_iter}, {"db", tx_db},   {nullptr, nullptr},
  };
  define_metatable(L, kDbType, db_methods, destroy<Db>);
  define_metatable(L, kTxType, tx_methods, destroy<Tx>);
  const luaL_Reg no_methods[] = {{nullptr, nullptr}};
  define_metatable(L, kAttemptType, no_methods, destroy<Attempt>);
  // kv_methods.lua wraps the db methods (results after a wait, db:update's loop) in place.
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kv_methods");
  lua_call(L, 1, 1);
  luaL_getmetatable(L, kDbType);
  lua_getfield(L, -1, "__index");
  lua_remove(L, -2);
  lua_pushcfunction(L, db_update_step);
  lua_pushcfunction(L, db_new_attempt);
  lua_pushlightuserdata(L, const_cast<char*>(&kFailed));
  lua_pushlightuserdata(L, const_cast<char*>(&kAgain));
  lua_call(L, 5, 0);
  const luaL_Reg functions[] = {{"open", kv_open}, {"sync", kv_sync}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
