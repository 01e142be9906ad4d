// Lua module `depot`: what a script asks of the engine itself.
//
//   depot.sleep(seconds)          waits without holding the worker (inside a task)
//   depot.now()                   wall-clock seconds since the epoch, with fractions
//   depot.monotonic()             seconds on a clock that never jumps (for durations)
//   depot.wait(name [, timeout])  waits until depot.notify(name) (true) or the timeout (false)
//   depot.notify(name)            wakes every task waiting on name, on every worker; returns the
//                                 count
//   depot.notify_local(name)      the same within this process only (no other replica is told)
//   depot.deadline(seconds)       stops the running task once it waited `seconds` from now
//   depot.fail(status, message [, headers])  ends the request with an error answer
//   depot.progress(label, done [, total])     an admin command's progress on stderr
//   depot.worker_id, depot.workers, depot.generation
//   depot.data_dir                the server's data directory (absolute)
//
// Documented in docs/lua-api.md.
#include <sys/time.h>

#include "bindings/binding.hpp"
#include "engine/lua_api.hpp"
#include "engine/progress.hpp"
#include "engine/runtime.hpp"
#include "engine/server_core.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

std::chrono::nanoseconds seconds_argument(lua_State* L, int index, const char* function) {
  double seconds = luaL_checknumber(L, index);
  if (!(seconds >= 0) || seconds > 1e9)
    luaL_error(L, "%s: seconds must be a number >= 0", function);
  return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

int sleep(lua_State* L) {
  auto delay = seconds_argument(L, 1, "depot.sleep");
  Task& task = Task::require(L, "depot.sleep");
  TaskHandle sleeping(task);
  task.runtime().worker().add_timer(
      delay, [sleeping] { sleeping.resume_here([](lua_State*) { return 0; }); });
  return task.suspend(L);
}

int now(lua_State* L) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  lua_pushnumber(L, static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6);
  return 1;
}

int monotonic(lua_State* L) {
  lua_pushnumber(L, std::chrono::duration<double>(Clock::now().time_since_epoch()).count());
  return 1;
}

int wait(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  Task& task = Task::require(L, "depot.wait");
  Worker& worker = task.runtime().worker();
  NamedEvents& events = worker.core().events();
  uint64_t id = task.id();
  uint64_t token = events.add(name, task);
  if (!lua_isnoneornil(L, 2)) {
    auto timeout = seconds_argument(L, 2, "depot.wait");
    worker.add_timer(timeout, [&worker, &events, name, token, id] {
      if (!events.remove(name, token)) return;  // notified first
      if (Task* waiting = worker.find_task(id)) {
        waiting->resume([](lua_State* co) {
          lua_pushboolean(co, 0);
          return 1;
        });
      }
    });
  }
  return task.suspend(L);
}

int notify(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  require_serving(L, "depot.notify");
  size_t woken = binding_context(L).worker->core().events().notify(name);
  lua_pushinteger(L, static_cast<lua_Integer>(woken));
  return 1;
}

// For events only this process waits on (a worker's own group commit): no relay round trip,
// so no PostgreSQL NOTIFY per call.
int notify_local(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  require_serving(L, "depot.notify_local");
  size_t woken = binding_context(L).worker->core().events().wake_local(name);
  lua_pushinteger(L, static_cast<lua_Integer>(woken));
  return 1;
}

int deadline(lua_State* L) {
  auto span = seconds_argument(L, 1, "depot.deadline");
  if (span.count() == 0) luaL_error(L, "depot.deadline: seconds must be > 0");
  Task& task = Task::require(L, "depot.deadline");
  // Rounded up: a deadline of 0.0004 s must not mean "none".
  task.set_deadline(std::chrono::ceil<std::chrono::milliseconds>(span),
                    task.runtime().worker().now());
  return 0;
}

uint64_t count_argument(lua_State* L, int index) {
  double count = luaL_checknumber(L, index);
  if (!(count >= 0) || count > 9e15) luaL_error(L, "depot.progress: counts must be numbers >= 0");
  return static_cast<uint64_t>(count);
}

int report_progress(lua_State* L) {
  std::string label = luaL_checkstring(L, 1);
  uint64_t done = count_argument(L, 2);
  std::optional<uint64_t> total;
  if (!lua_isnoneornil(L, 3)) total = count_argument(L, 3);
  if (!serving(L)) progress::report(label, done, total);
  return 0;
}

int open_depot(lua_State* L) {
  const luaL_Reg functions[] = {
      {"sleep", sleep},         {"now", now},
      {"monotonic", monotonic}, {"wait", wait},
      {"notify", notify},       {"notify_local", notify_local},
      {"deadline", deadline},   {"progress", report_progress},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_rawgeti(L, LUA_REGISTRYINDEX, static_cast<int>(lua_tointeger(L, lua_upvalueindex(1))));
  lua_getfield(L, -1, "fail");
  lua_setfield(L, -3, "fail");
  lua_pop(L, 1);
  BindingContext& context = binding_context(L);
  lua_pushstring(L, std::filesystem::absolute(context.data_dir).c_str());
  lua_setfield(L, -2, "data_dir");
  if (context.worker != nullptr) {
    lua_pushinteger(L, static_cast<lua_Integer>(context.worker->index()));
    lua_setfield(L, -2, "worker_id");
    lua_pushinteger(L, static_cast<lua_Integer>(context.worker->core().workers().size()));
    lua_setfield(L, -2, "workers");
  }
  if (context.runtime != nullptr) {
    lua_pushinteger(L, static_cast<lua_Integer>(context.runtime->generation().number));
    lua_setfield(L, -2, "generation");
  }
  return 1;
}
}  // namespace

void register_depot_module(lua_State* L, int prelude_ref) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushinteger(L, prelude_ref);
  lua_pushcclosure(L, open_depot, 1);
  lua_setfield(L, -2, "depot");
  lua_pop(L, 2);
}

}  // namespace depot
