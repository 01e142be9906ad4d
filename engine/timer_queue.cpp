// Deadline-ordered timers for one reactor thread (see timer_queue.hpp).
#include "engine/timer_queue.hpp"

namespace depot {

TimerQueue::Id TimerQueue::add(Clock::time_point deadline, Callback callback) {
  Id id = next_id_++;
  by_deadline_.emplace(Key{deadline, id}, std::move(callback));
  deadline_of_.emplace(id, deadline);
  return id;
}

void TimerQueue::cancel(Id id) {
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return;
  by_deadline_.erase(Key{it->second, id});
  deadline_of_.erase(it);
}

void TimerQueue::run_due(Clock::time_point now) {
  while (!by_deadline_.empty() && by_deadline_.begin()->first.first <= now) {
    auto first = by_deadline_.begin();
    Callback callback = std::move(first->second);
    deadline_of_.erase(first->first.second);
    by_deadline_.erase(first);
    callback();
  }
}

}  // namespace depot
