// State shared by all workers of one server: options, listening sockets, the workers themselves,
// named events, the metrics, the blocking-work pool and the preemption watchdog. Created by Server
// before the reactor starts.
#pragma once

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "engine/metrics.hpp"
#include "engine/named_events.hpp"
#include "engine/options.hpp"
#include "engine/preemption.hpp"
#include "engine/thread_pool.hpp"
#include "engine/unique_fd.hpp"

namespace depot {

class Worker;

class ServerCore {
 public:
  ServerCore(Options options, std::vector<UniqueFd> listen_fds);
  ~ServerCore();

  const Options& options() const { return options_; }
  // The listening socket of worker `worker_index`, handed over once (the worker closes it).
  UniqueFd take_listen_fd(size_t worker_index) { return std::move(listen_fds_.at(worker_index)); }
  size_t next_worker_index() { return next_worker_index_++; }
  void register_worker(size_t index, Worker* worker);
  const std::vector<Worker*>& workers() const { return workers_; }

  // Open client connections across all workers, against Limits::max_connections (resolved).
  size_t max_connections() const { return max_connections_; }
  std::atomic<size_t>& open_connections() { return open_connections_; }

  metrics::ServerMetrics& metrics() { return metrics_; }
  NamedEvents& events() { return events_; }
  ThreadPool& pool() { return pool_; }
  PreemptionWatchdog& watchdog() { return watchdog_; }

 private:
  Options options_;
  std::vector<UniqueFd> listen_fds_;  // those no worker has taken yet, closed with the core
  std::atomic<size_t> next_worker_index_{0};
  std::vector<Worker*> workers_;
  size_t max_connections_;
  std::atomic<size_t> open_connections_{0};
  metrics::ServerMetrics metrics_;
  NamedEvents events_;
  ThreadPool pool_;
  PreemptionWatchdog watchdog_;
};

}  // namespace depot
