// Events keyed by name, across all workers: a task waits on a name until another task (on any
// worker) notifies it, or its timeout passes. The image cache's readers wait on an entry's id
// this way while its fetch runs. Waiting holds no thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace depot {

class Worker;

class NamedEvents {
 public:
  struct Waiter {
    Worker* worker;
    uint64_t task;
    uint64_t token;
  };

  uint64_t add(const std::string& name, Worker* worker, uint64_t task);
  // True if the waiter was still registered (so its timeout, not a notify, ends the wait).
  bool remove(const std::string& name, uint64_t token);
  // Takes every waiter of `name`.
  std::vector<Waiter> take_all(const std::string& name);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;
  uint64_t next_token_ = 1;
};

}  // namespace depot
