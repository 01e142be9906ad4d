// Threads for work that may block (disk, password hashing, DNS): the reactor threads hand such
// work here and are told when it is done. Bounded queue: submit() refuses when it is full, so a
// flood of slow work shows up as errors, not as unbounded memory.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace depot {

class ThreadPool {
 public:
  ThreadPool(size_t threads, size_t max_queued);
  ~ThreadPool();  // stop()
  // Finishes the queued work and joins the threads; submit() refuses afterwards. Idempotent.
  void stop();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // False when the queue is full.
  bool submit(std::function<void()> work);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  size_t max_queued_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace depot
