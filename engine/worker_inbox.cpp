// Work posted to a worker from other threads (see worker_inbox.hpp).
#include "engine/worker_inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine/log.hpp"

namespace depot {

WorkerInbox::WorkerInbox() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!fd_.valid()) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
}

void WorkerInbox::push(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_) {
      // Only the first of a batch wakes the worker: the rest ride along (on_ready drains the
      // eventfd before it takes the queue, so a push after the take wakes it again).
      bool wake = queue_.empty();
      queue_.push_back(std::move(work));
      // Written under the lock: once close() returns, no thread is still about to wake a worker.
      if (wake) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
      }
      return;
    }
  }
  // Closed: `work` is destroyed as this returns, outside the lock.
}

void WorkerInbox::close() {
  std::vector<std::function<void()>> discarded;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    discarded.swap(queue_);
    fd_.reset();  // handles may keep the inbox a while longer; the eventfd is of no use to them
  }
}

void WorkerInbox::on_ready(Readiness) {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd_.get(), &count, sizeof count);  // drain before popping
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& work : batch) {
    try {
      work();
    } catch (const std::exception& e) {
      log::error("posted work failed", {{"error", e.what()}});
    }
  }
}

}  // namespace depot
