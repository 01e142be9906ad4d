// Resuming a waiting task from any thread (see task_handle.hpp).
#include "engine/task_handle.hpp"

#include <utility>

#include "engine/runtime.hpp"
#include "engine/worker.hpp"
#include "engine/worker_inbox.hpp"

namespace depot {

TaskHandle::TaskHandle(Task& task)
    : worker_(&task.runtime().worker()), inbox_(worker_->inbox()), task_id_(task.id()) {}

void TaskHandle::resume(Task::Pusher push) const {
  TaskHandle self = *this;
  inbox_->push([self, push = std::move(push)] { self.resume_here(push); });
}

void TaskHandle::resume_here(const Task::Pusher& push) const {
  if (Task* task = worker_->find_task(task_id_)) task->resume(push);
}

bool TaskHandle::alive() const {
  return worker_->find_task(task_id_) != nullptr;
}

}  // namespace depot
