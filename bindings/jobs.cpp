// Lua module `jobs`: timers that run Lua functions as background tasks.
//
//   jobs.after(seconds, fn, ...)  → handle   runs fn(premature, ...) once, `seconds` from now
//   jobs.every(seconds, fn, ...)  → handle   runs fn(premature, ...) every `seconds`
//   handle:cancel()                          the timer never fires again (a running call finishes)
//
// Each call runs as its own task, so it may wait (sleep, http, fs). When the scripts are reloaded
// or the server stops, every pending timer of the old generation fires once at once with
// premature = true — to clean up, not to do work — and then never again (OpenResty's contract).
// An `every` tick that comes while the previous call still runs is skipped: calls never overlap.
// A timer belongs to the worker whose script created it. Errors in fn are logged with their
// traceback. Timers are not durable: they vanish with the process (durable jobs: jobs.enqueue).
#include <memory>
#include <unordered_map>

#include "bindings/binding.hpp"
#include "engine/runtime.hpp"
#include "engine/task.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kTimerSetKey = "depot.jobs.timers";
const char* const kHandleType = "depot.jobs.timer";

// The timers of one runtime. Lives in its Lua state's registry (freed with the state).
class TimerSet {
 public:
  struct Timer {
    int function_ref;  // a table {fn, arg1, ...} in the registry
    double interval;   // 0 for a one-shot timer
    TimerQueue::Id queued = 0;
    uint64_t running_task = 0;
  };

  explicit TimerSet(Runtime& runtime) : runtime_(runtime) {
    runtime.on_retire([this] { fire_all_prematurely(); });
  }

  uint64_t add(int function_ref, double delay, double interval) {
    uint64_t id = next_id_++;
    timers_.emplace(id, Timer{function_ref, interval});
    schedule(id, delay);
    return id;
  }

  void cancel(uint64_t id) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    if (it->second.queued) runtime_.worker().cancel_timer(it->second.queued);
    release(it);
  }

 private:
  void schedule(uint64_t id, double delay) {
    auto duration =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
    timers_.at(id).queued = runtime_.worker().add_timer(duration, [this, id] { fire(id, false); });
  }

  void fire(uint64_t id, bool premature) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    Timer& timer = it->second;
    timer.queued = 0;
    Worker& worker = runtime_.worker();
    bool previous_still_running =
        timer.running_task != 0 && worker.find_task(timer.running_task) != nullptr;
    if (!previous_still_running || premature) {
      int function_ref = timer.function_ref;
      Task* task = runtime_.spawn_logged(Task::Kind::timer, "timer",
                                         [function_ref, premature](lua_State* co) {
                                           lua_rawgeti(co, LUA_REGISTRYINDEX, function_ref);
                                           int list = lua_gettop(co);
                                           int count = static_cast<int>(lua_objlen(co, list));
                                           lua_rawgeti(co, list, 1);
                                           lua_pushboolean(co, premature);
                                           for (int i = 2; i <= count; ++i)
                                             lua_rawgeti(co, list, i);
                                           lua_remove(co, list);
                                           return count + 1;
                                         });
      // The timer may have been cancelled from inside its own call.
      it = timers_.find(id);
      if (it == timers_.end()) return;
      it->second.running_task = task ? task->id() : 0;
    }
    if (it->second.interval > 0 && !premature && !runtime_.retired()) {
      schedule(id, it->second.interval);
    } else {
      release(it);
    }
  }

  void fire_all_prematurely() {
    std::vector<uint64_t> ids;
    for (auto& [id, timer] : timers_) {
      if (timer.queued) runtime_.worker().cancel_timer(timer.queued);
      timer.queued = 0;
      ids.push_back(id);
    }
    for (uint64_t id : ids) fire(id, true);
  }

  void release(std::unordered_map<uint64_t, Timer>::iterator it) {
    luaL_unref(runtime_.state(), LUA_REGISTRYINDEX, it->second.function_ref);
    timers_.erase(it);
  }

  Runtime& runtime_;
  std::unordered_map<uint64_t, Timer> timers_;
  uint64_t next_id_ = 1;
};

int timer_set_gc(lua_State* L) {
  static_cast<TimerSet*>(lua_touserdata(L, 1))->~TimerSet();
  return 0;
}

TimerSet& timers_of(lua_State* L, const char* function) {
  require_serving(L, function);  // an offline runtime has no worker to run timers on
  BindingContext& context = binding_context(L);
  if (context.runtime->retired())
    luaL_error(L, "%s: the scripts are being replaced or the server stops", function);
  lua_getfield(L, LUA_REGISTRYINDEX, kTimerSetKey);
  auto* timers = static_cast<TimerSet*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (timers != nullptr) return *timers;
  timers = new (lua_newuserdata(L, sizeof(TimerSet))) TimerSet(*context.runtime);
  lua_newtable(L);
  lua_pushcfunction(L, timer_set_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, kTimerSetKey);
  return *timers;
}

int add_timer(lua_State* L, const char* function, bool repeating) {
  double seconds = luaL_checknumber(L, 1);
  if (!(seconds >= 0) || (repeating && seconds <= 0)) {
    luaL_error(L, "%s: seconds must be %s", function, repeating ? "> 0" : ">= 0");
  }
  luaL_checktype(L, 2, LUA_TFUNCTION);
  TimerSet& timers = timers_of(L, function);
  int count = lua_gettop(L) - 1;  // the function and its arguments
  lua_createtable(L, count, 0);
  for (int i = 0; i < count; ++i) {
    lua_pushvalue(L, 2 + i);
    lua_rawseti(L, -2, i + 1);
  }
  int function_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uint64_t id = timers.add(function_ref, seconds, repeating ? seconds : 0);
  *static_cast<uint64_t*>(lua_newuserdata(L, sizeof(uint64_t))) = id;
  luaL_getmetatable(L, kHandleType);
  lua_setmetatable(L, -2);
  return 1;
}

int after(lua_State* L) {
  return add_timer(L, "jobs.after", false);
}
int every(lua_State* L) {
  return add_timer(L, "jobs.every", true);
}

int cancel(lua_State* L) {
  uint64_t id = *static_cast<uint64_t*>(luaL_checkudata(L, 1, kHandleType));
  lua_getfield(L, LUA_REGISTRYINDEX, kTimerSetKey);
  if (auto* timers = static_cast<TimerSet*>(lua_touserdata(L, -1))) timers->cancel(id);
  return 0;
}

}  // namespace

int open_jobs(lua_State* L) {
  const luaL_Reg handle_methods[] = {{"cancel", cancel}, {nullptr, nullptr}};
  define_metatable(L, kHandleType, handle_methods, nullptr);
  const luaL_Reg functions[] = {{"after", after}, {"every", every}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
