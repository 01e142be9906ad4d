// A worker's inbox: work other threads post to it, run on the worker's thread, woken through an
// eventfd in its epoll set. Shared rather than owned by the worker alone: a TaskHandle keeps it,
// so that a completion arriving after the worker is gone (the process-wide LMDB syncer thread
// outlives every server, and a stopping server does not wait for its fsyncs) finds the inbox
// closed and is dropped instead of touching a freed worker.
//
// Never extends the worker's life: what is posted after close() is destroyed on the posting thread,
// so it must hold values only (Task::Pusher does), never Lua state or worker objects.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "engine/event_source.hpp"
#include "engine/unique_fd.hpp"

namespace depot {

class WorkerInbox final : public EventSource {
 public:
  WorkerInbox();
  int fd() const { return fd_.get(); }

  // Any thread: queues `work` and wakes the worker. Once closed, `work` is dropped.
  void push(std::function<void()> work);
  // The worker, as it goes: later pushes are dropped, and what is still queued is discarded.
  void close();

  // Worker thread: runs what was queued, in order of posting.
  void on_ready(Readiness) override;

 private:
  UniqueFd fd_;
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;
  bool closed_ = false;
};

}  // namespace depot
