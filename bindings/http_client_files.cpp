// Request and response bodies streamed through files on the thread pool (see
// http_client_files.hpp).
#include "bindings/http_client_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/blocking.hpp"

namespace depot {
namespace {

constexpr size_t kChunkBytes = 1024 * 1024;

std::string queue_full() {
  return "too much blocking work queued; try again later";
}

// Pool: exactly `length` bytes at `offset`, or throws.
std::string read_at(int fd, const std::string& path, uint64_t offset, size_t length) {
  std::string data(length, '\0');
  size_t done = 0;
  while (done < length) {
    ssize_t got = ::pread(fd, &data[done], length - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw disk::FsError(path, errno);
    if (got == 0) throw disk::FsError(path, "the file shrank while it was being sent");
    done += static_cast<size_t>(got);
  }
  return data;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpBodyFile

bool HttpBodyFile::open(Worker& worker, const std::string& path,
                        std::function<void(std::shared_ptr<HttpBodyFile>, std::string)> done) {
  Worker* home = &worker;
  return offload(worker, [home, path, done]() -> std::function<void()> {
    std::string failure;
    auto fd = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat status {};
    if (fd->get() < 0 || ::fstat(fd->get(), &status) != 0) {
      failure = disk::FsError(path, errno).what();
    } else if (!S_ISREG(status.st_mode)) {
      failure = disk::FsError(path, "not a regular file").what();
    }
    uint64_t size = static_cast<uint64_t>(status.st_size);
    return [home, path, done, fd, size, failure] {
      if (!failure.empty()) return done(nullptr, failure);
      done(std::make_shared<HttpBodyFile>(*home, path, fd, size), "");
    };
  });
}

HttpBodyFile::HttpBodyFile(Worker& worker, std::string path, std::shared_ptr<UniqueFd> fd,
                           uint64_t size)
    : worker_(worker), path_(std::move(path)), fd_(std::move(fd)), size_(size) {}

size_t HttpBodyFile::read(char* out, size_t capacity) {
  if (!error_.empty()) return kFailed;
  if (current_position_ == current_.size()) {
    if (!next_ready_) {
      if (!reading_ && read_offset_ >= size_) return 0;
      if (!reading_) start_read();
      if (!error_.empty()) return kFailed;
      waiting_ = true;
      return kPause;
    }
    current_.swap(next_);
    next_.clear();
    next_ready_ = false;
    current_position_ = 0;
    if (!reading_ && read_offset_ < size_) start_read();  // read ahead while curl sends this one
  }
  size_t count = std::min(capacity, current_.size() - current_position_);
  std::memcpy(out, current_.data() + current_position_, count);
  current_position_ += count;
  return count;
}

void HttpBodyFile::rewind(uint64_t offset) {
  ++generation_;
  current_.clear();
  current_position_ = 0;
  next_.clear();
  next_ready_ = false;
  reading_ = false;
  waiting_ = false;
  read_offset_ = offset;
  error_.clear();
}

void HttpBodyFile::start_read() {
  uint64_t offset = read_offset_;
  size_t length = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size_ - offset));
  read_offset_ += length;
  reading_ = true;
  uint64_t generation = generation_;
  std::shared_ptr<HttpBodyFile> self = shared_from_this();
  bool queued = offload(worker_, [self, generation, offset, length]() -> std::function<void()> {
    std::string data;
    std::string failure;
    try {
      data = read_at(self->fd_->get(), self->path_, offset, length);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    return [self, generation, data = std::move(data), failure]() mutable {
      self->on_read(generation, std::move(data), std::move(failure));
    };
  });
  if (!queued) {
    reading_ = false;
    error_ = queue_full();
  }
}

void HttpBodyFile::on_read(uint64_t generation, std::string data, std::string failure) {
  if (generation != generation_) return;
  reading_ = false;
  if (failure.empty()) {
    next_ = std::move(data);
    next_ready_ = true;
  } else {
    error_ = std::move(failure);
  }
  if (waiting_ && ready_) {
    waiting_ = false;
    ready_();
  }
}

// ---------------------------------------------------------------------------------------------
// HttpOutputFile

bool HttpOutputFile::open(Worker& worker, const std::string& path,
                          std::function<void(std::shared_ptr<HttpOutputFile>, std::string)> done) {
  Worker* home = &worker;
  return offload(worker, [home, path, done]() -> std::function<void()> {
    std::shared_ptr<disk::AtomicFile> file;
    std::string failure;
    try {
      file = std::make_shared<disk::AtomicFile>(path, disk::AtomicFileOptions{});
    } catch (const std::exception& e) {
      failure = e.what();
    }
    return [home, done, file, failure] {
      if (!failure.empty()) return done(nullptr, failure);
      done(std::make_shared<HttpOutputFile>(*home, file), "");
    };
  });
}

HttpOutputFile::HttpOutputFile(Worker& worker, std::shared_ptr<disk::AtomicFile> file)
    : worker_(worker), file_(std::move(file)) {}

HttpOutputFile::~HttpOutputFile() {
  if (phase_ != Phase::closed) abandon();
}

bool HttpOutputFile::accept(const char* data, size_t size) {
  if (buffer_.size() >= kChunkBytes && in_flight_) {
    refused_ = true;
    return false;
  }
  buffer_.append(data, size);
  bytes_ += size;
  // One pool write at a time: flushing_ belongs to the pool thread until on_written.
  if (buffer_.size() >= kChunkBytes && !in_flight_ && !start_write(false)) error_ = queue_full();
  return true;
}

bool HttpOutputFile::start_write(bool commit) {
  flushing_.swap(buffer_);
  buffer_.clear();
  in_flight_ = true;
  std::shared_ptr<HttpOutputFile> self = shared_from_this();
  bool queued = offload(worker_, [self, commit]() -> std::function<void()> {
    std::string failure;
    try {
      self->file_->append(self->flushing_);
      if (commit) self->file_->commit();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    return [self, failure] { self->on_written(failure); };
  });
  if (!queued) {
    in_flight_ = false;
    buffer_.swap(flushing_);
  }
  return queued;
}

void HttpOutputFile::on_written(std::string failure) {
  in_flight_ = false;
  flushing_.clear();
  if (!failure.empty() && error_.empty()) error_ = std::move(failure);
  if (phase_ == Phase::committing) return write_last();
  if (phase_ == Phase::closed) {  // that was the commit
    std::function<void(std::string)> committed = std::move(committed_);
    committed_ = nullptr;
    if (committed) committed(error_);
    return;
  }
  if (buffer_.size() >= kChunkBytes && !start_write(false)) error_ = queue_full();
  if (refused_ && ready_) {
    refused_ = false;
    ready_();
  }
}

void HttpOutputFile::commit(std::function<void(std::string)> done) {
  phase_ = Phase::committing;
  committed_ = std::move(done);
  if (!in_flight_) write_last();  // otherwise once the write in flight is done
}

void HttpOutputFile::write_last() {
  std::function<void(std::string)> committed = committed_;
  if (error_.empty()) {
    phase_ = Phase::closed;
    if (start_write(true)) return;
    error_ = queue_full();
  }
  abandon();
  committed_ = nullptr;
  committed(error_);
}

void HttpOutputFile::abandon() {
  phase_ = Phase::closed;
  ready_ = nullptr;
  std::string().swap(buffer_);
  std::shared_ptr<disk::AtomicFile> file = file_;
  bool queued = offload(worker_, [file]() -> std::function<void()> {
    file->abort();
    return nullptr;
  });
  if (!queued) file->abort();  // the pool is full or stopped: a single unlink, here
}

}  // namespace depot
