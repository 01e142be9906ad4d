// Write streams for Lua: buffering and handing writes to the pool (see fs_writer.hpp).
#include "bindings/fs_writer.hpp"

#include <functional>
#include <memory>
#include <new>

#include "bindings/binding.hpp"
#include "engine/blocking.hpp"
#include "engine/server_core.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kWriterMetatable = "depot.fs.writer";
constexpr size_t kFlushBytes = 1024 * 1024;

// The worker-thread side of one writer. The pool side is `file` (thread-safe); `flushing` is the
// one piece of memory the two share, and only the pool touches it while `in_flight`.
class WriteStream : public std::enable_shared_from_this<WriteStream> {
 public:
  enum class State { open, committing, committed, aborted };

  explicit WriteStream(std::shared_ptr<disk::AtomicFile> file) : file(std::move(file)) {}

  std::shared_ptr<disk::AtomicFile> file;
  std::string buffer;    // accepted, not yet handed to the pool
  std::string flushing;  // being written by the pool
  bool in_flight = false;
  std::function<void()> when_idle;  // runs on the worker once the in-flight write is done
  std::string error;                // the first failure; every later call returns it
  uint64_t bytes = 0;
  State state = State::open;

  // Hands `buffer` to the pool as one write. False (buffer kept) when the queue is full.
  bool start_flush(Worker& worker) {
    flushing.swap(buffer);
    buffer.clear();
    in_flight = true;
    std::shared_ptr<WriteStream> self = shared_from_this();
    bool queued = offload(worker, [self]() -> std::function<void()> {
      std::string failure;
      try {
        self->file->append(self->flushing);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      return [self, failure] { self->on_flushed(failure); };
    });
    if (!queued) {
      in_flight = false;
      buffer.swap(flushing);
    }
    return queued;
  }

  // Hands the rest to the pool with the commit; resumes task `waiting` with its results.
  bool start_commit(Worker& worker, TaskHandle waiting) {
    flushing.swap(buffer);
    buffer.clear();
    in_flight = true;
    std::shared_ptr<WriteStream> self = shared_from_this();
    bool queued = offload(worker, [self, waiting]() -> std::function<void()> {
      disk::AtomicFile::Result result;
      std::string failure;
      try {
        self->file->append(self->flushing);
        result = self->file->commit();
      } catch (const std::exception& e) {
        failure = e.what();
      }
      return [self, waiting, result, failure] {
        self->on_committed(failure);
        waiting.resume_here(self->commit_pusher(result));
      };
    });
    if (!queued) {
      in_flight = false;
      buffer.swap(flushing);
    }
    return queued;
  }

  // Worker thread, after a background write.
  void on_flushed(const std::string& failure) {
    in_flight = false;
    flushing.clear();
    if (!failure.empty() && error.empty()) error = "fs.writer: " + failure;
    if (when_idle) {
      std::function<void()> next = std::move(when_idle);
      when_idle = nullptr;
      next();  // may resume the task, which may call into this stream again: nothing after this
    }
  }

  void on_committed(const std::string& failure) {
    in_flight = false;
    std::string().swap(buffer);
    std::string().swap(flushing);
    state = failure.empty() ? State::committed : State::aborted;
    if (!failure.empty() && error.empty()) error = "fs.writer: " + failure;
  }

  Task::Pusher commit_pusher(const disk::AtomicFile::Result& result) const {
    if (state != State::committed) return failure_pusher(error);
    return [result](lua_State* co) {
      lua_pushnumber(co, static_cast<lua_Number>(result.bytes));
      if (result.hex_digest.empty()) {
        lua_pushnil(co);
      } else {
        lua_pushlstring(co, result.hex_digest.data(), result.hex_digest.size());
      }
      return 2;
    };
  }

  // Drops the data and removes the temporary file: on the pool when there is one (the pool's
  // mutex-ordered file waits for a write still running), inline otherwise.
  void abandon(Worker* worker) {
    state = State::aborted;
    std::string().swap(buffer);
    std::shared_ptr<disk::AtomicFile> target = file;
    if (worker == nullptr || !worker->core().pool().submit([target] { target->abort(); })) {
      target->abort();
    }
  }
};

// The userdata: one reference to the stream, dropped by __gc.
struct WriterHandle {
  std::shared_ptr<WriteStream> stream;
};

WriterHandle& check_handle(lua_State* L) {
  return *static_cast<WriterHandle*>(luaL_checkudata(L, 1, kWriterMetatable));
}

// The stream at argument 1, which must still take data; raises otherwise.
WriteStream& check_open_writer(lua_State* L, const char* method) {
  WriteStream& stream = *check_handle(L).stream;
  if (stream.state == WriteStream::State::committing) {
    luaL_error(L, "fs.writer:%s: the writer is being committed", method);
  } else if (stream.state == WriteStream::State::committed) {
    luaL_error(L, "fs.writer:%s: the writer is committed", method);
  } else if (stream.state == WriteStream::State::aborted && stream.error.empty()) {
    luaL_error(L, "fs.writer:%s: the writer is aborted", method);
  }
  if (stream.when_idle) {
    luaL_error(L, "fs.writer:%s: another task is waiting on this writer", method);
  }
  return stream;
}

// The worker for background work, or nullptr to work inline. A write still running from a task
// cannot be waited for outside one.
Worker* writer_worker(lua_State* L, WriteStream& stream, const char* function) {
  Worker* worker = blocking_worker(L, function);
  if (worker == nullptr && stream.in_flight) {
    luaL_error(L, "%s: a background write is pending; use this writer inside a task", function);
  }
  return worker;
}

// w:write(chunk) -> true | nil, message
int writer_write(lua_State* L) {
  WriteStream& stream = check_open_writer(L, "write");
  if (lua_type(L, 2) != LUA_TSTRING) luaL_error(L, "fs.writer:write: chunk must be a string");
  Worker* worker = writer_worker(L, stream, "fs.writer:write");
  if (!stream.error.empty()) return push_failure(L, stream.error);
  size_t size;
  const char* chunk = lua_tolstring(L, 2, &size);
  stream.buffer.append(chunk, size);
  stream.bytes += size;
  if (stream.buffer.size() < kFlushBytes) return push_true(L);
  if (worker == nullptr) {
    try {
      stream.file->append(stream.buffer);
    } catch (const std::exception& e) {
      stream.error = std::string("fs.writer: ") + e.what();
    }
    stream.buffer.clear();
    return stream.error.empty() ? push_true(L) : push_failure(L, stream.error);
  }
  if (!stream.in_flight) {
    if (!stream.start_flush(*worker)) {
      return luaL_error(L, "%s", queue_full_message("fs.writer:write").c_str());
    }
    return push_true(L);
  }
  Task& task = *Task::of_state(L);
  TaskHandle waiting_task(task);
  WriteStream* waiting = &stream;  // kept alive by the in-flight write, which holds it
  stream.when_idle = [waiting, worker, waiting_task] {
    if (!waiting->error.empty()) {
      waiting_task.resume_here(failure_pusher(waiting->error));
    } else if (!waiting->start_flush(*worker)) {
      waiting_task.resume_here(failure_pusher(queue_full_message("fs.writer:write")));
    } else {
      waiting_task.resume_here(push_true);
    }
  };
  return task.suspend(L);
}

// w:bytes() -> number of bytes accepted so far
int writer_bytes(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check_handle(L).stream->bytes));
  return 1;
}

// w:commit() -> bytes, hex digest | nil, message
int writer_commit(lua_State* L) {
  WriteStream& stream = check_open_writer(L, "commit");
  Worker* worker = writer_worker(L, stream, "fs.writer:commit");
  if (!stream.error.empty()) {
    if (stream.state == WriteStream::State::open) stream.abandon(worker);
    return push_failure(L, stream.error);
  }
  stream.state = WriteStream::State::committing;
  if (worker == nullptr) {
    disk::AtomicFile::Result result;
    std::string failure;
    try {
      stream.file->append(stream.buffer);
      result = stream.file->commit();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    stream.on_committed(failure);
    return stream.commit_pusher(result)(L);
  }
  Task& task = *Task::of_state(L);
  TaskHandle waiting_task(task);
  if (stream.in_flight) {
    WriteStream* waiting = &stream;
    stream.when_idle = [waiting, worker, waiting_task] {
      if (!waiting->error.empty()) {
        waiting->abandon(worker);
        waiting_task.resume_here(failure_pusher(waiting->error));
      } else if (!waiting->start_commit(*worker, waiting_task)) {
        waiting->state = WriteStream::State::open;
        waiting_task.resume_here(failure_pusher(queue_full_message("fs.writer:commit")));
      }
    };
  } else if (!stream.start_commit(*worker, waiting_task)) {
    stream.state = WriteStream::State::open;
    return luaL_error(L, "%s", queue_full_message("fs.writer:commit").c_str());
  }
  return task.suspend(L);
}

// w:abort() -> true | false (nothing to abort: committed, or being committed)
int writer_abort(lua_State* L) {
  WriteStream& stream = *check_handle(L).stream;
  if (stream.state == WriteStream::State::committed ||
      stream.state == WriteStream::State::committing) {
    lua_pushboolean(L, 0);
    return 1;
  }
  stream.state = WriteStream::State::aborted;
  std::string().swap(stream.buffer);
  std::shared_ptr<disk::AtomicFile> file = stream.file;
  return run_blocking(L, "fs.writer:abort", [file]() -> Task::Pusher {
    file->abort();
    return Task::Pusher(push_true);
  });
}

int writer_gc(lua_State* L) {
  WriterHandle& handle = check_handle(L);
  if (handle.stream && handle.stream->state == WriteStream::State::open) {
    handle.stream->abandon(binding_context(L).worker);
  }
  handle.~WriterHandle();
  return 0;
}

int writer_tostring(lua_State* L) {
  WriteStream& stream = *check_handle(L).stream;
  const char* state = stream.state == WriteStream::State::open        ? "open"
                      : stream.state == WriteStream::State::committed ? "committed"
                      : stream.state == WriteStream::State::aborted   ? "aborted"
                                                                      : "committing";
  lua_pushfstring(L, "fs.writer (%s, %s)", stream.file->path().c_str(), state);
  return 1;
}

void push_writer(lua_State* L, std::shared_ptr<disk::AtomicFile> file) {
  void* memory = lua_newuserdata(L, sizeof(WriterHandle));
  new (memory) WriterHandle{std::make_shared<WriteStream>(std::move(file))};
  luaL_getmetatable(L, kWriterMetatable);
  lua_setmetatable(L, -2);
}

}  // namespace

void create_writer_metatable(lua_State* L) {
  const luaL_Reg methods[] = {
      {"write", writer_write}, {"bytes", writer_bytes}, {"commit", writer_commit},
      {"abort", writer_abort}, {nullptr, nullptr},
  };
  define_metatable(L, kWriterMetatable, methods, writer_gc, writer_tostring);
}

int open_writer(lua_State* L, std::string path, disk::AtomicFileOptions options) {
  // Should the task end before the pusher runs, dropping the pusher removes the temporary file.
  return run_blocking(L, "fs.writer", [path, options]() -> Task::Pusher {
    auto file = std::make_shared<disk::AtomicFile>(path, options);
    return [file](lua_State* co) {
      push_writer(co, file);
      return 1;
    };
  });
}

}  // namespace depot
