// Write streams for Lua: buffering and handing writes to the pool (see fs_writer.hpp).
#include "bindings/fs_writer.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "bindings/binding.hpp"
#include "engine/blocking.hpp"
#include "engine/server_core.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kWriterMetatable = "depot.fs.writer";
// How much a buffer holds before it goes to the pool: the writers open in the process share
// kWritersBudget, each between 64 KiB (a socket read, so one body chunk fills a buffer) and 1 MiB.
// A few writers get big writes, hence few pool round trips per MiB; 500 concurrent uploads get
// 64 KiB each instead of 500 × 2 MiB (see fs_writer.hpp).
constexpr size_t kMinFlushBytes = 64 * 1024;
constexpr size_t kMaxFlushBytes = 1024 * 1024;
constexpr size_t kWritersBudget = 16 * 1024 * 1024;
constexpr size_t kKeptWhenIdle = 2 * kMaxFlushBytes;
std::atomic<size_t> open_writers{0};

size_t flush_bytes() {
  size_t share = kWritersBudget / std::max<size_t>(1, open_writers.load(std::memory_order_relaxed));
  return std::clamp(share, kMinFlushBytes, kMaxFlushBytes);
}

// Buffers of closed writers, kept for the next ones: a fresh buffer costs a page fault per 4 KiB
// on first touch (a sixth of an upload's CPU when each 1 MiB upload took new ones), a reused one
// none. Any thread gives and takes. At most kWritersBudget is kept while writers are open; when
// the last one closes the pool keeps only kKeptWhenIdle (one lone upload's two buffers, so
// uploads one after another reuse them too) before the heap is trimmed.
class BufferPool {
 public:
  // A buffer with room for `capacity` bytes, empty.
  std::string take(size_t capacity) {
    std::string buffer;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->capacity() < capacity) continue;
        buffer.swap(*it);
        idle_bytes_ -= buffer.capacity();
        idle_.erase(it);
        break;
      }
    }
    buffer.reserve(capacity);
    return buffer;
  }

  // Keeps `buffer`'s memory if it is a writer buffer's size and the pool has room.
  void give(std::string& buffer) {
    std::string kept;
    kept.swap(buffer);
    size_t capacity = kept.capacity();
    if (capacity < kMinFlushBytes || capacity > kMaxFlushBytes) return;
    kept.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_bytes_ + capacity > kWritersBudget) return;
    idle_bytes_ += capacity;
    idle_.push_back(std::move(kept));
  }

  void shrink_to_idle() {
    std::vector<std::string> dropped;
    std::lock_guard<std::mutex> lock(mutex_);
    while (idle_bytes_ > kKeptWhenIdle) {
      idle_bytes_ -= idle_.back().capacity();
      dropped.push_back(std::move(idle_.back()));
      idle_.pop_back();
    }
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> idle_;
  size_t idle_bytes_ = 0;
};

BufferPool& buffer_pool() {
  static BufferPool pool;
  return pool;
}

// What one write to the file holds: body chunk slices a pipe handed over (kept, not copied),
// then the bytes w:write copied in, in that order.
struct Batch {
  struct Slice {
    std::shared_ptr<const std::string> owner;  // the body chunk `data` lies in
    std::string_view data;
  };
  std::vector<Slice> slices;
  size_t slice_bytes = 0;
  std::string copied;

  size_t size() const { return slice_bytes + copied.size(); }
  std::vector<std::string_view> pieces() const {
    std::vector<std::string_view> pieces;
    pieces.reserve(slices.size() + 1);
    for (const Slice& slice : slices) pieces.push_back(slice.data);
    pieces.push_back(copied);
    return pieces;
  }
  void drop_slices() {
    slices.clear();
    slice_bytes = 0;
  }
};

// The worker-thread side of one writer. The pool side is `file` (thread-safe); `flushing` is the
// one piece of memory the two share, and only the pool touches it while `in_flight`.
class WriteStream final : public WriterFeed, public std::enable_shared_from_this<WriteStream> {
 public:
  enum class State { open, committing, committed, aborted };

  explicit WriteStream(std::shared_ptr<disk::AtomicFile> file) : file(std::move(file)) {
    open_writers.fetch_add(1, std::memory_order_relaxed);
  }
  ~WriteStream() {
    buffer_pool().give(pending.copied);
    buffer_pool().give(flushing.copied);
    leave_budget();
  }

  std::shared_ptr<disk::AtomicFile> file;
  Batch pending;   // accepted, not yet handed to the pool
  Batch flushing;  // being written by the pool
  bool in_flight = false;
  std::function<void()> when_idle;  // runs on the worker once the in-flight write is done
  std::string error;                // the first failure; every later call returns it
  uint64_t bytes = 0;
  State state = State::open;
  bool in_budget = true;  // counted in open_writers: still taking data

  // Called once the stream takes no more data (committed, aborted, collected). The last writer
  // to leave frees the pooled buffers; the heap pages they and the uploads' socket data held go
  // back to the OS at the next sweep (engine/heap_trim.hpp).
  void leave_budget() {
    if (!in_budget) return;
    in_budget = false;
    if (open_writers.fetch_sub(1, std::memory_order_relaxed) == 1) buffer_pool().shrink_to_idle();
  }

  // Makes `pending` the batch in flight; the emptied one (its buffer's memory kept) takes the
  // next bytes.
  void begin_flight() {
    std::swap(pending, flushing);
    pending.copied.clear();
    in_flight = true;
  }
  void cancel_flight() {
    in_flight = false;
    std::swap(pending, flushing);
  }

  // Hands `pending` to the pool as one write. False (nothing handed over) when the queue is full.
  bool start_flush(Worker& worker) {
    begin_flight();
    std::shared_ptr<WriteStream> self = shared_from_this();
    bool queued = offload(worker, [self]() -> std::function<void()> {
      std::string failure;
      try {
        self->file->append(self->flushing.pieces());
      } catch (const std::exception& e) {
        failure = e.what();
      }
      return [self, failure] { self->on_flushed(failure); };
    });
    if (!queued) cancel_flight();
    return queued;
  }

  // Hands the rest to the pool with the commit; resumes task `waiting` with its results.
  bool start_commit(Worker& worker, TaskHandle waiting) {
    begin_flight();
    std::shared_ptr<WriteStream> self = shared_from_this();
    bool queued = offload(worker, [self, waiting]() -> std::function<void()> {
      disk::AtomicFile::Result result;
      std::string failure;
      try {
        self->file->append(self->flushing.pieces());
        result = self->file->commit();
      } catch (const std::exception& e) {
        failure = e.what();
      }
      return [self, waiting, result, failure] {
        self->on_committed(failure);
        waiting.resume_here(self->commit_pusher(result));
      };
    });
    if (!queued) cancel_flight();
    return queued;
  }

  // Worker thread, after a background write. The slices' chunks are freed here, on the thread
  // that allocated them.
  void on_flushed(const std::string& failure) {
    in_flight = false;
    flushing.drop_slices();
    release_if_oversized(flushing.copied);
    if (!failure.empty() && error.empty()) error = "fs.writer: " + failure;
    if (when_idle) {
      std::function<void()> next = std::move(when_idle);
      when_idle = nullptr;
      next();  // may resume the task, which may call into this stream again: nothing after this
    }
  }

  void on_committed(const std::string& failure) {
    in_flight = false;
    pending.drop_slices();
    flushing.drop_slices();
    buffer_pool().give(pending.copied);
    buffer_pool().give(flushing.copied);
    leave_budget();
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

  // Keeps a flushed buffer's capacity for the next one, unless it is larger than buffers are now
  // (a big chunk, or more writers opened since): that memory goes back at once rather than living
  // as long as the writer.
  static void release_if_oversized(std::string& flushed) {
    if (flushed.capacity() > flush_bytes()) {
      std::string().swap(flushed);
    } else {
      flushed.clear();
    }
  }

  enum class Accepted { taken, busy, failed, queue_full };

  // Copies `chunk` into the buffer and hands a full batch to the pool (inline without a
  // worker); busy, taking nothing, when it would fill the batch while a write is in flight.
  Accepted accept(Worker* worker, std::string_view chunk) {
    if (!error.empty()) return Accepted::failed;
    size_t limit = flush_bytes();
    bool fills = false;
    Accepted room = make_room(worker, chunk.size(), limit, fills);
    if (room != Accepted::taken) return room;
    std::string& buffer = pending.copied;
    // The whole buffer at once: grown by appends it would be copied at each doubling.
    if (buffer.empty() && buffer.capacity() < limit) {
      buffer = buffer_pool().take(limit);
    } else if (buffer.capacity() < limit) {
      buffer.reserve(limit);
    }
    buffer.append(chunk);
    bytes += chunk.size();
    if (!fills) return Accepted::taken;
    if (worker == nullptr) {
      write_pending_inline();
      return error.empty() ? Accepted::taken : Accepted::failed;
    }
    return start_flush(*worker) ? Accepted::taken : Accepted::queue_full;
  }

  // Whether `size` more bytes fill the pending batch (`fills`). A chunk that would overflow a
  // part-filled batch first sends that batch on its own, so batches stay at `limit` instead of
  // growing to twice that for odd chunk sizes. busy, nothing to take yet, while a write is in
  // flight; taken when the chunk may be taken.
  Accepted make_room(Worker* worker, size_t size, size_t limit, bool& fills) {
    fills = pending.size() + size >= limit;
    if (!fills || worker == nullptr) return Accepted::taken;
    if (in_flight) return Accepted::busy;
    if (pending.size() > 0 && pending.size() + size > limit) {
      if (!start_flush(*worker)) return Accepted::queue_full;
      fills = size >= limit;
      if (fills) return Accepted::busy;
    }
    return Accepted::taken;
  }

  // Writes `pending` on this thread (a writer used outside a task: nothing is in flight).
  void write_pending_inline() {
    try {
      file->append(pending.pieces());
    } catch (const std::exception& e) {
      error = std::string("fs.writer: ") + e.what();
    }
    pending.drop_slices();
    release_if_oversized(pending.copied);
  }

  // Keeps `data` as a slice of `owner` (no copy) and hands a full batch to the pool; busy,
  // taking nothing, when it would fill the batch while a write is in flight.
  Accepted accept_slice(Worker& worker, std::string_view data,
                        std::shared_ptr<const std::string> owner) {
    if (!error.empty()) return Accepted::failed;
    bool fills = false;
    Accepted room = make_room(&worker, data.size(), flush_bytes(), fills);
    if (room != Accepted::taken) return room;
    if (!pending.copied.empty()) {  // bytes w:write copied in go first: they came first
      auto copied = std::make_shared<const std::string>(std::move(pending.copied));
      pending.copied = std::string();
      pending.slices.push_back({copied, *copied});
      pending.slice_bytes += copied->size();
    }
    pending.slices.push_back({std::move(owner), data});
    pending.slice_bytes += data.size();
    bytes += data.size();
    if (!fills) return Accepted::taken;
    return start_flush(worker) ? Accepted::taken : Accepted::queue_full;
  }

  // WriterFeed, for part:pipe and req:pipe. A full pool queue fails the writer: the pipe
  // cannot hand the chunk back to a caller that would try again.
  Take take(Worker& worker, std::string_view data,
            std::shared_ptr<const std::string> owner) override {
    if (state != State::open && error.empty()) error = "fs.writer: the writer is aborted";
    switch (accept_slice(worker, data, std::move(owner))) {
      case Accepted::taken:
        return Take::taken;
      case Accepted::busy:
        return Take::busy;
      case Accepted::queue_full:
        error = queue_full_message("fs.writer:write");
        break;
      case Accepted::failed:
        break;
    }
    return Take::failed;
  }
  void wait_ready(std::function<void()> ready) override { when_idle = std::move(ready); }
  const std::string& failure() const override { return error; }

  // Drops the data and removes the temporary file: on the pool when there is one (the pool's
  // mutex-ordered file waits for a write still running), inline otherwise.
  void abandon(Worker* worker) {
    pending.drop_slices();
    buffer_pool().give(pending.copied);
    leave_budget();
    state = State::aborted;
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

// Raises, naming `function`, unless `stream` still takes data.
void check_takes_data(lua_State* L, const WriteStream& stream, const char* function) {
  if (stream.state == WriteStream::State::committing) {
    luaL_error(L, "%s: the writer is being committed", function);
  } else if (stream.state == WriteStream::State::committed) {
    luaL_error(L, "%s: the writer is committed", function);
  } else if (stream.state == WriteStream::State::aborted && stream.error.empty()) {
    luaL_error(L, "%s: the writer is aborted", function);
  }
  if (stream.when_idle) luaL_error(L, "%s: another task is waiting on this writer", function);
}

// The stream at argument 1, which must still take data; raises otherwise.
WriteStream& check_open_writer(lua_State* L, const char* function) {
  WriteStream& stream = *check_handle(L).stream;
  check_takes_data(L, stream, function);
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

// The C half of w:write(chunk): takes the chunk into the buffer, or returns false (taking
// nothing) when that would fill the buffer while a write is still in flight; the Lua half
// (kWriteInLua) then waits with writer_wait and tries again. So while a task waits, the chunk is
// still the caller's string, not a second copy here: per writer at most one buffer in flight and
// one part-filled buffer. Returns true | nil, message | false.
int writer_take(lua_State* L) {
  WriteStream& stream = check_open_writer(L, "fs.writer:write");
  if (lua_type(L, 2) != LUA_TSTRING) luaL_error(L, "fs.writer:write: chunk must be a string");
  Worker* worker = writer_worker(L, stream, "fs.writer:write");
  size_t size;
  const char* chunk = lua_tolstring(L, 2, &size);
  switch (stream.accept(worker, std::string_view(chunk, size))) {
    case WriteStream::Accepted::taken:
      return push_true(L);
    case WriteStream::Accepted::busy:
      lua_pushboolean(L, 0);
      return 1;
    case WriteStream::Accepted::failed:
      return push_failure(L, stream.error);
    case WriteStream::Accepted::queue_full:
      break;
  }
  return luaL_error(L, "%s", queue_full_message("fs.writer:write").c_str());
}

// Waits (inside a task) until no write is in flight; returns nothing. writer_take reports a
// failure of that write.
int writer_wait(lua_State* L) {
  WriteStream& stream = check_open_writer(L, "fs.writer:write");
  Worker* worker = writer_worker(L, stream, "fs.writer:write");
  if (worker == nullptr || !stream.in_flight) return 0;
  Task& task = *Task::of_state(L);
  TaskHandle waiting_task(task);
  stream.when_idle = [waiting_task] { waiting_task.resume_here([](lua_State*) { return 0; }); };
  return task.suspend(L);
}

// w:write(chunk) -> true | nil, message. Lua, so that the chunk stays referenced (a local) while
// the task waits; called with writer_take and writer_wait.
const char kWriteInLua[] = R"LUA(
local take, wait = ...
return function(self, chunk)
  local ok, err = take(self, chunk)
  while ok == false do
    wait(self)
    ok, err = take(self, chunk)
  end
  return ok, err
end
)LUA";

// w:bytes() -> number of bytes accepted so far
int writer_bytes(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check_handle(L).stream->bytes));
  return 1;
}

// w:commit() -> bytes, hex digest | nil, message
int writer_commit(lua_State* L) {
  WriteStream& stream = check_open_writer(L, "fs.writer:commit");
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
      stream.file->append(stream.pending.pieces());
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
  stream.pending.drop_slices();
  buffer_pool().give(stream.pending.copied);
  stream.leave_budget();
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
      {"bytes", writer_bytes},
      {"commit", writer_commit},
      {"abort", writer_abort},
      {nullptr, nullptr},
  };
  define_metatable(L, kWriterMetatable, methods, writer_gc, writer_tostring);
  luaL_getmetatable(L, kWriterMetatable);
  lua_getfield(L, -1, "__index");
  if (luaL_loadbuffer(L, kWriteInLua, sizeof kWriteInLua - 1, "=fs.writer:write") != 0)
    lua_error(L);
  lua_pushcfunction(L, writer_take);
  lua_pushcfunction(L, writer_wait);
  lua_call(L, 2, 1);
  lua_setfield(L, -2, "write");
  lua_pop(L, 2);
}

std::shared_ptr<WriterFeed> writer_feed(lua_State* L, int index, const char* function) {
  auto* handle = static_cast<WriterHandle*>(luaL_testudata(L, index, kWriterMetatable));
  if (handle == nullptr) return nullptr;
  check_takes_data(L, *handle->stream, function);
  return handle->stream;
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
