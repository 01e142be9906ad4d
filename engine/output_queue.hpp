// A connection's pending output: memory and file segments flushed with send(2) and sendfile(2).
// Never blocks and never spins: flush() stops at EAGAIN (or after a per-call sendfile budget, so
// one big download cannot starve the other connections of its thread) and reports it.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "engine/unique_fd.hpp"

namespace depot {

class OutputQueue {
 public:
  enum class FlushResult { done, blocked, failed };

  OutputQueue() = default;
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;
  ~OutputQueue();

  // Appends bytes, coalescing with the previous memory segment so a pipelined batch or a
  // head + small body leave in a single send.
  void append(std::string_view bytes);
  void append(std::string&& bytes);
  // Queues `length` bytes of `fd` from `offset`; the queue closes fd once they are sent.
  void append_file(UniqueFd fd, off_t offset, size_t length);

  FlushResult flush(int socket);
  bool empty() const { return segments_.empty(); }
  // Bytes of memory queued (files are not counted: they cost no memory).
  size_t buffered_bytes() const { return buffered_; }
  uint64_t bytes_sent() const { return sent_; }
  // Memory and file segments queued (each file segment holds a descriptor).
  size_t segment_count() const { return segments_.size(); }
  void clear();

 private:
  struct Segment {
    std::string data;  // memory segment when fd is none
    size_t data_offset = 0;
    UniqueFd fd;
    off_t file_offset = 0;
    size_t file_left = 0;
  };
  std::vector<Segment> segments_;  // few at a time; a vector keeps its buffer between requests
  size_t buffered_ = 0;
  uint64_t sent_ = 0;
};

}  // namespace depot
