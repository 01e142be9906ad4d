// Per-worker timers ordered by deadline. Owned and used by one reactor thread only; the worker arms
// a single timerfd to the earliest deadline, so a thousand sleeping handlers cost one fd.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

namespace depot {

using Clock = std::chrono::steady_clock;

class TimerQueue {
 public:
  using Id = uint64_t;
  using Callback = std::function<void()>;

  Id add(Clock::time_point deadline, Callback callback);
  // Cancelling an id that already fired or was cancelled is a no-op.
  void cancel(Id id);
  // Runs every callback whose deadline is <= now. Callbacks may add or cancel timers.
  void run_due(Clock::time_point now);
  bool empty() const { return by_deadline_.empty(); }
  Clock::time_point next_deadline() const { return by_deadline_.begin()->first.first; }
  size_t size() const { return by_deadline_.size(); }

 private:
  using Key = std::pair<Clock::time_point, Id>;
  std::map<Key, Callback> by_deadline_;
  std::unordered_map<Id, Clock::time_point> deadline_of_;
  Id next_id_ = 1;
};

}  // namespace depot
