// The file ends of an outbound HTTP request, kept off the reactor: the request body streamed from
// a file (`body_file`) and the response body streamed into one (`output_file`). Every open, read,
// write and rename runs on the server's thread pool; the worker thread only moves memory. When the
// pool is behind, the transfer is paused (CURL_READFUNC_PAUSE / CURL_WRITEFUNC_PAUSE) and the
// owner unpauses it from the `ready` callback — so memory stays at about two 1 MiB chunks per
// file, however large the file and however fast the network.
//
// The output file is a disk::AtomicFile: the data goes to a hidden temporary file next to the
// target and is renamed over it on commit, so the target shows the previous version (or nothing)
// until the download is complete, and a failed download leaves nothing behind.
//
// Worker thread only, except where a comment says "pool". Objects are shared_ptr-owned because the
// pool jobs in flight keep them alive past their owner.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bindings/fs_atomic_file.hpp"

namespace depot {

class Worker;

// Request body from a file: curl's read callback pulls from the chunk in memory while the next
// one is read on the pool.
class HttpBodyFile : public std::enable_shared_from_this<HttpBodyFile> {
 public:
  static constexpr size_t kPause = static_cast<size_t>(-1);  // no data yet: pause, wait for `ready`
  static constexpr size_t kFailed = static_cast<size_t>(-2);  // see error()

  // Opens `path` on the pool; `done` gets the source, or nullptr and the error ("<path>: <why>").
  // False (nothing started) when the pool's queue is full.
  static bool open(Worker& worker, const std::string& path,
                   std::function<void(std::shared_ptr<HttpBodyFile>, std::string)> done);

  HttpBodyFile(Worker& worker, std::string path, std::shared_ptr<UniqueFd> fd, uint64_t size);

  uint64_t size() const { return size_; }
  // Up to `capacity` bytes into `out`; 0 at the end of the file; kPause or kFailed.
  size_t read(char* out, size_t capacity);
  // Starts again from `offset` (a retry, or curl rewinding for a redirect).
  void rewind(uint64_t offset);
  const std::string& error() const { return error_; }
  // Called once, after a kPause, when data (or a failure) is there.
  void on_ready(std::function<void()> ready) { ready_ = std::move(ready); }

 private:
  void start_read();
  void on_read(uint64_t generation, std::string data, std::string failure);

  Worker& worker_;
  std::string path_;
  std::shared_ptr<UniqueFd> fd_;
  uint64_t size_;
  std::string current_;  // being handed to curl
  size_t current_position_ = 0;
  std::string next_;  // read ahead
  bool next_ready_ = false;
  bool reading_ = false;
  uint64_t read_offset_ = 0;  // where the next pool read starts
  uint64_t generation_ = 0;   // reads started before a rewind are ignored
  bool waiting_ = false;
  std::string error_;
  std::function<void()> ready_;
};

// Response body into a file: curl's write callback appends to memory; full megabytes are written
// on the pool.
class HttpOutputFile : public std::enable_shared_from_this<HttpOutputFile> {
 public:
  // Creates the temporary file for `path` on the pool; `done` gets the sink or nullptr and the
  // error. False (nothing started) when the pool's queue is full.
  static bool open(Worker& worker, const std::string& path,
                   std::function<void(std::shared_ptr<HttpOutputFile>, std::string)> done);

  HttpOutputFile(Worker& worker, std::shared_ptr<disk::AtomicFile> file);
  ~HttpOutputFile();

  // Takes the bytes (true), or refuses them while a megabyte is buffered and the previous one is
  // still being written (false: pause, and offer them again once `ready` is called).
  bool accept(const char* data, size_t size);
  // Called after a refusal, when there is room (or a failure) again.
  void on_ready(std::function<void()> ready) { ready_ = std::move(ready); }
  const std::string& error() const { return error_; }
  uint64_t bytes() const { return bytes_; }

  // Writes the rest and renames the file into place; `done` gets "" or the error. No accept()
  // after this.
  void commit(std::function<void(std::string)> done);
  // Drops the data and removes the temporary file (on the pool). Also what destruction does to a
  // file neither committed nor abandoned.
  void abandon();

 private:
  enum class Phase { writing, committing, closed };

  bool start_write(bool commit);
  void on_written(std::string failure);
  void write_last();

  Worker& worker_;
  std::shared_ptr<disk::AtomicFile> file_;
  std::string buffer_;    // accepted, not yet handed to the pool
  std::string flushing_;  // being written by the pool
  bool in_flight_ = false;
  bool refused_ = false;
  Phase phase_ = Phase::writing;
  uint64_t bytes_ = 0;
  std::string error_;
  std::function<void()> ready_;
  std::function<void(std::string)> committed_;
};

}  // namespace depot
