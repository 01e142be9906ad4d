// Blocking work for Lua bindings (disk, and anything else that may take a while): it runs on the
// server's ThreadPool while the calling task waits, and the task is resumed on its own worker with
// what the work produced. The reactor thread never waits on the work.
//
//   int fs_copy(lua_State* L) {
//     ...check arguments (raise here, before the work exists)...
//     return run_blocking(L, "fs.copy", [src, dst]() -> Task::Pusher {
//       copy_tree(src, dst);                     // on a pool thread; may throw
//       return [](lua_State* co) { lua_pushboolean(co, 1); return 1; };  // on the worker
//     });
//   }
//
// Where the same call runs:
// - inside a task (request handler, timer, job): on the pool; the task yields until it is done;
// - where no task runs (plain states in unit tests and tools, script load time): inline, on the
//   calling thread, which blocks; the results are pushed directly. Same code, same results;
// - inside a coroutine the script created itself within a task: nowhere. It could not yield to
//   the engine there and blocking would stall the reactor, so the call raises.
//
// Caveats, stated bluntly: the work must not touch Lua (it runs on another thread) and must
// capture what it needs by value. The pool's queue is bounded (ThreadPool): when it is full the
// call raises "<function>: too much blocking work queued; try again later" rather than queueing
// without limit. A task that ends while its work runs (deadline, shutdown) is not resumed: the
// pusher is dropped on the worker thread.
#pragma once

#include <functional>
#include <lua.hpp>
#include <string>

#include "engine/task.hpp"

namespace depot {

class Worker;

// Work for run_blocking: runs on a pool thread and returns the pusher that hands its results to
// the waiting call (on the worker thread). A std::exception it throws becomes the call's results
// `nil, "<function>: <what()>"` — the "OS failures return nil, message" convention of bindings.
using BlockingWork = std::function<Task::Pusher()>;

// Ends a binding that waits: `return run_blocking(L, "fs.copy", work);` (see the top of the file).
// `function` names the call in errors and must outlive the work: pass a string literal.
int run_blocking(lua_State* L, const char* function, BlockingWork work);

// The worker whose pool `function` hands its work to: the running task's worker, or nullptr where
// the work must run inline (no task runs in L). Raises inside a coroutine the script created.
Worker* blocking_worker(lua_State* L, const char* function);

// Lower level, for bindings that keep work going between calls (write streams): runs `work` on
// `worker`'s pool, then the function it returns (if any) on `worker`'s thread. Returns false,
// having run nothing, when the pool's queue is full. `work` must not throw: if it does anyway, the
// error is logged and nothing runs on the worker.
bool offload(Worker& worker, std::function<std::function<void()>()> work);

// "<function>: too much blocking work queued; try again later": what run_blocking raises when the
// pool's queue is full, for callers of offload to raise (or return) the same.
std::string queue_full_message(const char* function);

// A pusher of the results `nil, message` (bindings' "OS failures return nil, message").
Task::Pusher failure_pusher(std::string message);

}  // namespace depot
