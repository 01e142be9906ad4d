// Events keyed by name, across all workers: a task waits on a name until another task (on any
// worker) notifies it, or its timeout passes. The image cache's readers wait on an entry's id
// this way while its fetch runs. Waiting holds no thread.
//
// Across replicas: with a relay (PostgreSQL LISTEN/NOTIFY when the kv store is PostgreSQL, see
// bindings/postgres_events.hpp) a notify also reaches the waiters of every other process sharing
// the store. Local waiters are woken at once either way, without a round trip to the server.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/task_handle.hpp"

namespace depot {

class Worker;

// Carries notifies to the other processes and back (any thread).
class NamedEventsRelay {
 public:
  virtual ~NamedEventsRelay() = default;
  // Sends `name` to the other processes; never waits.
  virtual void publish(const std::string& name) = 0;
};

class NamedEvents {
 public:
  ~NamedEvents();

  // Worker thread: registers `task` as waiting on `name`; the token removes it again.
  uint64_t add(const std::string& name, Task& task);
  // True if the waiter was still registered (so its timeout, not a notify, ends the wait).
  bool remove(const std::string& name, uint64_t token);
  // Any thread: wakes every waiter of `name` in this process (their wait returns true) and
  // tells the relay; how many local waiters were woken.
  size_t notify(const std::string& name);
  // Any thread (the relay): a notify from another process, for the waiters here.
  size_t wake_local(const std::string& name);

  // Installs (or, with null, stops) the relay; before the server starts, or as it stops.
  void set_relay(std::unique_ptr<NamedEventsRelay> relay);

 private:
  struct Waiter {
    TaskHandle task;
    uint64_t token;
  };

  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<Waiter>> waiters_;
  uint64_t next_token_ = 1;
  std::unique_ptr<NamedEventsRelay> relay_;
};

}  // namespace depot
