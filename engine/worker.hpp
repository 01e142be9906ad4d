// One reactor thread: Pistache's Aio::Reactor runs exactly one Worker clone per thread (Pistache
// supports only one Aio::Handler per reactor). A worker owns its SO_REUSEPORT listening socket,
// its connections, a timerfd driving its TimerQueue, an inbox other threads post work to, its
// Lua runtimes (one per live script generation) and the tasks (coroutines) running in them.
//
// Everything here runs on the worker's own thread except post(), which any thread may call.
// A worker must never block: disk, DNS and other slow work goes to the ThreadPool.
#pragma once

#include <pistache/reactor.h>

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/event_source.hpp"
#include "engine/timer_queue.hpp"

namespace depot {

namespace metrics {
class WorkerMetrics;
}
class ServerCore;
class Connection;
class RequestHandler;
class Runtime;
class PreemptionSlot;
class Task;
class WorkerInbox;
struct Generation;

enum class Interest { none, read, write, read_write };

class Worker final : public Pistache::Aio::Handler {
 public:
  Worker(ServerCore& core, size_t index);
  ~Worker() override;

  std::shared_ptr<Pistache::Aio::Handler> clone() const override;
  void registerPoller(Pistache::Polling::Epoll& poller) override;
  void onReady(const Pistache::Aio::FdSet& fds) override;

  // Any thread: runs `work` on this worker's thread, in order of posting.
  void post(std::function<void()> work);
  // The inbox post() uses, for what may outlive the worker (TaskHandle): see worker_inbox.hpp.
  const std::shared_ptr<WorkerInbox>& inbox() const { return inbox_; }

  // --- worker thread only ---
  size_t index() const { return index_; }
  ServerCore& core() { return core_; }
  metrics::WorkerMetrics& metrics() { return metrics_; }
  Clock::time_point now() const { return now_; }

  // Runs `work` on this thread after the current event batch: for work that must not run inside
  // the caller (resuming a task from inside another task, re-entering a parser).
  void defer(std::function<void()> work) { deferred_.push_back(std::move(work)); }

  void watch(int fd, EventSource* source, Interest interest);
  void rewatch(int fd, EventSource* source, Interest interest);
  void unwatch(int fd);

  TimerQueue::Id add_timer(Clock::duration delay, TimerQueue::Callback callback);
  void cancel_timer(TimerQueue::Id id);

  // Shared receive buffer: connections recv into it and consume it before returning.
  char* read_buffer() { return read_buffer_.data(); }
  size_t read_buffer_size() const { return read_buffer_.size(); }

  void add_connection(Connection* connection);
  // Frees the connection after the current event batch (its events may still be in the batch).
  void retire_connection(Connection* connection);
  size_t connection_count() const { return connections_.size(); }
  // Connections waiting for a next request with nothing to do, oldest first (Connection::idle).
  void add_idle(Connection* connection);
  void remove_idle(Connection* connection);
  // At max_connections: closes the oldest idle connection of this worker; false if it has none.
  bool make_room_for_connection();

  // Starts accepting connections on this worker's listening socket. Server::start calls it once
  // every worker has its first generation: until then connections wait in the kernel's backlog
  // rather than being answered "no scripts are loaded".
  void start_accepting();

  // The runtime new requests and timers run in (the newest active generation); may be null
  // before the first generation is activated.
  Runtime* runtime() { return active_.get(); }
  // Where new requests go: the active runtime, unless another handler was set (tests drive a
  // Connection with a C++ handler of their own).
  RequestHandler* request_handler();
  void set_request_handler(RequestHandler* handler) { request_handler_ = handler; }
  // Builds this worker's runtime for a generation without activating it. Returns "" or why not.
  std::string stage_generation(const std::shared_ptr<const Generation>& generation);
  void activate_staged();
  void discard_staged();
  // Frees runtimes of older generations once none of their tasks is running.
  void collect_retired_runtimes();
  size_t runtime_count() const { return (active_ ? 1 : 0) + retired_.size() + (staged_ ? 1 : 0); }

  // Per-worker state a binding keeps (the HTTP client's curl multi handle, say), under a key of
  // its own (the address of a static). Destroyed with the worker, before its Lua runtimes; the
  // epoll set is gone by then, so destructors must not unwatch.
  std::shared_ptr<void>& extension(const void* key) { return extensions_[key]; }

  // Tasks (coroutines) by id; a wake-up for an id that is gone is dropped.
  Task* find_task(uint64_t id);
  void add_task(std::unique_ptr<Task> task);
  void remove_task(uint64_t id);
  Task* running_task() const { return running_task_; }
  void set_running_task(Task* task) { running_task_ = task; }
  // Where the running task is published for the preemption watchdog (preemption.hpp).
  PreemptionSlot& preemption() { return preemption_; }

  // Graceful shutdown: stop accepting, close idle connections; `done` runs (on this thread)
  // once every connection and request task has finished.
  void begin_drain(std::function<void()> done);
  // Hard stop at the drain deadline: close everything still open.
  void close_all();

 private:
  class Listener;
  class Ticker;

  void on_tick();
  void sweep();
  void run_deferred();
  void arm_timerfd();
  void check_drained();
  // Publishes the memory of this worker's Lua states to its metrics (the sweep, a new generation).
  void publish_lua_memory();

  ServerCore& core_;
  size_t index_;
  metrics::WorkerMetrics& metrics_;
  Pistache::Polling::Epoll* poller_ = nullptr;
  Clock::time_point now_;

  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Ticker> ticker_;
  std::shared_ptr<WorkerInbox> inbox_;
  TimerQueue timers_;
  Clock::time_point armed_for_ = Clock::time_point::max();
  TimerQueue::Id sweep_timer_ = 0;

  std::vector<std::function<void()>> deferred_;
  std::vector<char> read_buffer_;
  std::unordered_set<Connection*> connections_;
  std::vector<Connection*> graveyard_;
  std::list<Connection*> idle_connections_;

  std::unordered_map<const void*, std::shared_ptr<void>> extensions_;
  std::unique_ptr<Runtime> active_;
  std::unique_ptr<Runtime> staged_;
  std::vector<std::unique_ptr<Runtime>> retired_;
  std::unordered_map<uint64_t, std::unique_ptr<Task>> tasks_;
  Task* running_task_ = nullptr;
  PreemptionSlot& preemption_;
  RequestHandler* request_handler_ = nullptr;

  bool draining_ = false;
  std::function<void()> drained_;
};

}  // namespace depot
