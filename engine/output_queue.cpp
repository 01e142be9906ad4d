// Connection output: memory and file segments (see output_queue.hpp).
#include "engine/output_queue.hpp"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace depot {
namespace {
constexpr size_t kCoalesceLimit = 64 * 1024;
constexpr size_t kSendfileBudget = 4 * 1024 * 1024;
}  // namespace

OutputQueue::~OutputQueue() {
  clear();
}

void OutputQueue::clear() {
  segments_.clear();
  buffered_ = 0;
}

void OutputQueue::append(std::string_view bytes) {
  if (bytes.empty()) return;
  buffered_ += bytes.size();
  if (!segments_.empty()) {
    Segment& last = segments_.back();
    if (!last.fd.valid() && last.data.size() - last.data_offset + bytes.size() <= kCoalesceLimit) {
      last.data.append(bytes);
      return;
    }
  }
  Segment segment;
  segment.data.assign(bytes);
  segments_.push_back(std::move(segment));
}

void OutputQueue::append(std::string&& bytes) {
  bool can_coalesce = !segments_.empty() && !segments_.back().fd.valid() &&
                      segments_.back().data.size() + bytes.size() <= kCoalesceLimit;
  if (can_coalesce) {
    append(std::string_view(bytes));
    return;
  }
  buffered_ += bytes.size();
  Segment segment;
  segment.data = std::move(bytes);
  segments_.push_back(std::move(segment));
}

void OutputQueue::append_file(UniqueFd fd, off_t offset, size_t length) {
  if (length == 0) return;
  Segment segment;
  segment.fd = std::move(fd);
  segment.file_offset = offset;
  segment.file_left = length;
  segments_.push_back(std::move(segment));
}

OutputQueue::FlushResult OutputQueue::flush(int socket) {
  size_t sendfile_budget = kSendfileBudget;
  while (!segments_.empty()) {
    Segment& segment = segments_.front();
    if (!segment.fd.valid()) {
      bool more = segments_.size() > 1;
      size_t left = segment.data.size() - segment.data_offset;
      ssize_t n = ::send(socket, segment.data.data() + segment.data_offset, left,
                         MSG_NOSIGNAL | (more ? MSG_MORE : 0));
      if (n < 0) {
        if (errno == EINTR) continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? FlushResult::blocked
                                                         : FlushResult::failed;
      }
      sent_ += static_cast<uint64_t>(n);
      buffered_ -= static_cast<size_t>(n);
      segment.data_offset += static_cast<size_t>(n);
      if (static_cast<size_t>(n) < left) return FlushResult::blocked;
      segments_.erase(segments_.begin());
      continue;
    }
    if (sendfile_budget == 0) return FlushResult::blocked;
    size_t chunk = std::min(segment.file_left, sendfile_budget);
    ssize_t n = ::sendfile(socket, segment.fd.get(), &segment.file_offset, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? FlushResult::blocked : FlushResult::failed;
    }
    if (n == 0)
      return FlushResult::failed;  // the file shrank under us: the response cannot be completed
    sent_ += static_cast<uint64_t>(n);
    sendfile_budget -= static_cast<size_t>(n);
    segment.file_left -= static_cast<size_t>(n);
    if (segment.file_left == 0) segments_.erase(segments_.begin());
  }
  return FlushResult::done;
}

}  // namespace depot
