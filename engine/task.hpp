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

#include <cstdint>
#include <functional>
#include <lua.hpp>
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
  // Counted by the preemption hook: from the first instruction with limits.instruction_budget
  // (the hook is then always installed), otherwise only while a watchdog armed it.
  uint64_t instructions = 0;
  // "service: GET /pattern" for a request task, for the log.
  std::string route;

  // The request deadline counts time the task waits without progress. Waits on the client itself
  // (its body, its output draining) count as progress: the connection's body_timeout and
  // send_timeout govern those. Arrivals of body bytes push the deadline out too.
  void set_deadline(std::chrono::milliseconds span, Clock::time_point now);
  // The worker's once-a-second sweep: true when the deadline passed without progress.
  bool overdue(Clock::time_point now);

  // The preemption hook, every few thousand VM instructions of the running task once installed
  // (preemption.hpp): why the task must stop now (deadline, cpu_slice, instruction budget), or
  // nullptr. Once a task was told to stop it stays stopped: every later call says so again, so
  // pcall cannot swallow it.
  const char* must_stop(Clock::time_point now);
  // The HTTP status the stop is answered with (503 for time, 500 for the budget).
  int stop_status() const { return stop_status_; }

  // The task whose coroutine is L and is running now; nullptr in a plain state, at load time,
  // or inside a coroutine the script created itself.
  static Task* of_state(lua_State* L);
  // The task running now in L's state, also inside a coroutine the script created.
  static Task* running_in(lua_State* L);
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
  // Ends a suspended (or preempted) task without running it again (deadline, shutdown).
  void abort(int status, const std::string& message);

 private:
  void run(int argument_count);
  void finish(const char* error);
  // When the running task must be stopped unless it waited: its cpu_slice ends or its deadline
  // passes, whichever comes first (what must_stop checks but the budget).
  Clock::time_point check_at() const;

  Runtime& runtime_;
  Kind kind_;
  std::shared_ptr<Exchange> exchange_;
  uint64_t id_;
  lua_State* coroutine_ = nullptr;
  int coroutine_ref_ = LUA_NOREF;
  bool suspended_ = false;
  bool finished_ = false;
  std::chrono::milliseconds deadline_span_{0};
  Clock::time_point deadline_ = Clock::time_point::max();
  uint64_t body_seen_ = 0;
  Clock::time_point running_since_;
  const char* stop_reason_ = nullptr;
  int stop_status_ = 0;
};

}  // namespace depot
