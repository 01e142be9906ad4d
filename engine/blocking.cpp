// Blocking work for Lua bindings on the thread pool (see blocking.hpp).
#include "engine/blocking.hpp"

#include <exception>
#include <string>

#include "bindings/binding.hpp"
#include "engine/log.hpp"
#include "engine/runtime.hpp"
#include "engine/server_core.hpp"
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
  return [message](lua_State* co) {
    lua_pushnil(co);
    lua_pushlstring(co, message.data(), message.size());
    return 2;
  };
}

}  // namespace

std::string queue_full_message(const char* function) {
  return std::string(function) + ": too much blocking work queued; try again later";
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

void resume_task(Worker& worker, uint64_t task_id, const Task::Pusher& push) {
  if (Task* task = worker.find_task(task_id)) task->resume(push);
}

int run_blocking(lua_State* L, const char* function, BlockingWork work) {
  Worker* worker = blocking_worker(L, function);
  if (worker == nullptr) return run_guarded(work, function)(L);
  Task& task = *Task::of_state(L);
  uint64_t task_id = task.id();
  bool queued = offload(*worker, [worker, task_id, function, work = std::move(work)] {
    Task::Pusher push = run_guarded(work, function);
    return [worker, task_id, push = std::move(push)] { resume_task(*worker, task_id, push); };
  });
  if (!queued) {
    lua_pushstring(L, queue_full_message(function).c_str());
    return lua_error(L);
  }
  return task.suspend(L);
}

}  // namespace depot
