// Cross-worker named events (see named_events.hpp).
#include "engine/named_events.hpp"

namespace depot {

uint64_t NamedEvents::add(const std::string& name, Worker* worker, uint64_t task) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t token = next_token_++;
  waiters_[name].push_back(Waiter{worker, task, token});
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

std::vector<NamedEvents::Waiter> NamedEvents::take_all(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = waiters_.find(name);
  if (it == waiters_.end()) return {};
  std::vector<Waiter> taken = std::move(it->second);
  waiters_.erase(it);
  return taken;
}

}  // namespace depot
