// The way back to a task that waits (Task::suspend) for something finishing elsewhere: a job on
// the thread pool, the LMDB syncer thread, a timer, a curl transfer. Bindings that wait keep one
// of these, never a Task*: it names the task by id on its worker, so a task that ended meanwhile
// (its deadline, shutdown, a reload) is simply not resumed, and what was to be pushed is dropped
// on the worker thread. It reaches the worker through the worker's inbox, which it shares: a
// completion after the worker itself is gone (a server stopped while the LMDB syncer still had
// its fsync) is dropped on the completing thread, and never keeps the worker alive.
//
//   TaskHandle waiting(Task::require(L, "kv.put"));
//   start_work([waiting](Result result) {                 // on any thread, later
//     waiting.resume([result](lua_State* co) { push(co, result); return 1; });
//   });
//   return task.suspend(L);
#pragma once

#include <cstdint>
#include <memory>

#include "engine/task.hpp"

namespace depot {

class Worker;
class WorkerInbox;

class TaskHandle {
 public:
  // Worker thread: a handle to `task`, which may be copied to and used from any thread.
  explicit TaskHandle(Task& task);

  // Any thread: resumes the task on its worker's thread with what `push` pushes (see
  // Task::resume). `push` is taken by value because it travels to that thread: it must capture
  // its results by value too, and must not touch Lua until it runs there.
  void resume(Task::Pusher push) const;
  // Worker thread: the same, at once rather than through the worker's inbox.
  void resume_here(const Task::Pusher& push) const;
  // Worker thread: whether the task is still there to be resumed.
  bool alive() const;

 private:
  Worker* worker_;  // only used on the worker's thread, where it is alive
  std::shared_ptr<WorkerInbox> inbox_;
  uint64_t task_id_;
};

}  // namespace depot
