// Blocking work for Lua bindings on the thread pool (see blocking.hpp).
#include "engine/blocking.hpp"

#include <exception>
#include <string>
#include <utility>

#include "bindings/binding.hpp"
#include "engine/log.hpp"
#include "engine/runtime.hpp"
#include "engine/server_core.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

// Runs `work`, turning an exception into the results `nil, "<function>: <what>"`.
Task::Pusher run_guarded(const BlockingWork& work, const char* function) {
  std::string message;
  try {
    return work();
  } catch (const std::exception& e) {
    message = std::string(function) + ": " + e.what();
  }
  return failure_pusher(std::move(message));
}

}  // namespace

std::string queue_full_message(const char* function) {
  return std::string(function) + ": too much blocking work queued; try again later";
}

Task::Pusher failure_pusher(std::string message) {
  return [message = std::move(message)](lua_State* co) { return push_failure(co, message); };
}

Worker* blocking_worker(lua_State* L, const char* function) {
  Worker* worker = binding_context(L).worker;
  if (worker == nullptr) return nullptr;
  if (Task* task = Task::of_state(L)) return &task->runtime().worker();
  // A task is running but L is not its coroutine: a coroutine the script made. Raises.
  if (worker->running_task() != nullptr) Task::require(L, function);
  return nullptr;
}

bool offload(Worker& worker, std::function<std::function<void()>()> work) {
  return worker.core().pool().submit([&worker, work = std::move(work)] {
    std::function<void()> done;
    try {
      done = work();
    } catch (const std::exception& e) {
      log::error("blocking work threw; its caller is not told", {{"error", e.what()}});
      return;
    }
    if (done) worker.post(std::move(done));
  });
}

int run_blocking(lua_State* L, const char* function, BlockingWork work) {
  Worker* worker = blocking_worker(L, function);
  if (worker == nullptr) return run_guarded(work, function)(L);
  Task& task = *Task::of_state(L);
  TaskHandle waiting(task);
  bool queued = offload(*worker, [waiting, function, work = std::move(work)] {
    Task::Pusher push = run_guarded(work, function);
    return [waiting, push = std::move(push)] { waiting.resume_here(push); };
  });
  if (!queued) {
    lua_pushstring(L, queue_full_message(function).c_str());
    return lua_error(L);
  }
  return task.suspend(L);
}

}  // namespace depot
