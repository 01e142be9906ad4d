// Cross-worker (and, with a relay, cross-replica) named events (see named_events.hpp).
#include "engine/named_events.hpp"

namespace depot {

NamedEvents::~NamedEvents() = default;

uint64_t NamedEvents::add(const std::string& name, Task& task) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t token = next_token_++;
  waiters_[name].push_back(Waiter{TaskHandle(task), token});
  return token;
}

bool NamedEvents::remove(const std::string& name, uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = waiters_.find(name);
  if (it == waiters_.end()) return false;
  auto& list = it->second;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].token == token) {
      list.erase(list.begin() + static_cast<long>(i));
      if (list.empty()) waiters_.erase(it);
      return true;
    }
  }
  return false;
}

size_t NamedEvents::wake_local(const std::string& name) {
  std::vector<Waiter> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = waiters_.find(name);
    if (it == waiters_.end()) return 0;
    taken = std::move(it->second);
    waiters_.erase(it);
  }
  // Through each worker's inbox, also for the notifier's own worker: a task is never resumed
  // from inside another one, and a worker gone meanwhile (shutdown) drops the wake-up.
  for (const Waiter& waiter : taken) {
    waiter.task.resume([](lua_State* co) {
      lua_pushboolean(co, 1);
      return 1;
    });
  }
  return taken.size();
}

size_t NamedEvents::notify(const std::string& name) {
  size_t woken = wake_local(name);
  std::lock_guard<std::mutex> lock(mutex_);
  if (relay_) relay_->publish(name);
  return woken;
}

void NamedEvents::set_relay(std::unique_ptr<NamedEventsRelay> relay) {
  std::unique_ptr<NamedEventsRelay> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::move(relay_);
    relay_ = std::move(relay);
  }
  // `old` stops here, outside the lock: its thread may be delivering a wake-up right now.
}

}  // namespace depot
