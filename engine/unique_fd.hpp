// An owned file descriptor: every fd the engine and the bindings open (sockets, files, eventfd,
// timerfd, inotify) lives in one of these from the call that returned it, so an early return or
// an exception (a Lua error unwinds C++ frames too) can never leak it, and a closed one is -1
// rather than a number the kernel may already have handed to someone else.
//
// Move-only. Closing never retries on EINTR: on Linux the descriptor is gone whatever close says.
#pragma once

#include <unistd.h>

namespace depot {

class UniqueFd {
 public:
  // Takes `fd` (a negative value means none, as the calls that open one return on failure).
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  // Hands the descriptor over to the caller, who closes it from now on.
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now; returns close()'s result (0 when there was nothing to close), for the callers
  // that must report a failed close (a write-back error surfaces there).
  int reset() noexcept {
    if (fd_ < 0) return 0;
    int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

}  // namespace depot
