// A task is one coroutine the engine runs: a request handler, a timer callback or a job. Anything
// that waits (body reads, timers, outbound HTTP, disk work on the thread pool, named events)
// suspends the task and the worker goes on serving others; the waker resumes it later with the
// results. A wake-up for a task that has ended (aborted at its deadline, say) is dropped.
//
// Bindings that wait follow one pattern:
//   Task& task = Task::require(L, "fs.copy");
//   ... start the work with a TaskHandle(task); when it completes, on any thread:
//       waiting.resume([](lua_State* co) { push results; return count; });  (task_handle.hpp)
//   (engine/blocking.hpp does all of this for work that runs on the thread pool).
//   return task.suspend(L);
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/timer_queue.hpp"

namespace depot {

class Runtime;
class Worker;
class Exchange;

class Task {
 public:
  enum class Kind { request, timer, job };
  using Pusher = std::function<int(lua_State* coroutine)>;

  // Creates the coroutine, anchored in the runtime's registry. Call start() to run it.
  Task(Runtime& runtime, Kind kind, std::shared_ptr<Exchange> exchange);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  uint64_t id() const { return id_; }
  Kind kind() const { return kind_; }
  bool is_request() const { return kind_ == Kind::request; }
  Runtime& runtime() { return runtime_; }
  lua_State* coroutine() const { return coroutine_; }
  Exchange* exchange() const { return exchange_.get(); }
  const std::shared_ptr<Exchange>& exchange_pointer() const { return exchange_; }
  const std::string& request_id() const;
  uint64_t instructions = 0;  // counted by the budget hook
  // A request still waiting at its deadline is aborted with 503 by the worker's once-a-second
  // sweep; running code meets it in the instruction hook (when a budget is configured).
  Clock::time_point deadline = Clock::time_point::max();

  // The task whose coroutine is L and is running now; nullptr in a plain state, at load time,
  // or inside a coroutine the script created itself.
  static Task* of_state(lua_State* L);
  // Like of_state, but raises "<function>: ..." explaining where waiting is possible.
  static Task& require(lua_State* L, const char* function);

  // Runs the coroutine: `push_call` pushes the function and its arguments and returns how many
  // values it pushed (function included).
  void start(const Pusher& push_call);
  // Ends a C function that waits: `return task.suspend(L);`.
  int suspend(lua_State* L);
  // Continues a suspended task; `push` pushes the values the waiting call returns, or returns -1
  // (pushing nothing) when what the task waits for has not happened yet.
  void resume(const Pusher& push);
  bool suspended() const { return suspended_; }
  // Ends a suspended task without running it again (deadline, shutdown).
  void abort(int status, const std::string& message);

 private:
  void run(int argument_count);
  void finish(const char* error);

  Runtime& runtime_;
  Kind kind_;
  std::shared_ptr<Exchange> exchange_;
  uint64_t id_;
  lua_State* coroutine_ = nullptr;
  int coroutine_ref_ = LUA_NOREF;
  bool suspended_ = false;
  bool finished_ = false;
};

}  // namespace depot
