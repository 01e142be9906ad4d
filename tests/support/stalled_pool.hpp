// A thread pool held still, for tests of what waits on it: a FIFO that a pool thread reads (the
// route the test calls does fs.read on it) blocks that thread until the test writes to the FIFO.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace depot::testing {

// Opens a FIFO's writing end once a pool thread is reading it (ENXIO until then); -1 after 5 s.
inline int open_fifo_for_writing(const std::filesystem::path& fifo) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

}  // namespace depot::testing
