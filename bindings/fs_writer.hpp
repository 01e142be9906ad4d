// The write stream of the `fs` module (fs.writer): a Lua object that takes chunks as a request
// body arrives and lands them in a disk::AtomicFile (temporary file, incremental hash, rename on
// commit) without the reactor ever waiting on the disk.
//
// How it spends round trips and memory: w:write(chunk) appends to a memory buffer (a pipe's body
// chunks are kept as they are instead, see WriterFeed); once the buffer is full it is handed to
// the thread pool as one write and the call returns at once. A buffer holds the writer's share of
// 16 MiB split among all writers open in the process, between 64 KiB and 1 MiB: a lone upload makes
// one pool round trip per MiB, 500 concurrent uploads hold 64 KiB each. When a chunk would fill the
// buffer while the previous write is still running, the task waits for that write before it copies
// the chunk (w:write is a Lua loop around a C half, so the chunk stays the caller's string
// meanwhile). Per writer that is one buffer in flight and one part-filled buffer; the request body
// waiting in the connection keeps the pool busy. A failed background write is reported by the next
// call (write or commit). Closed writers' buffers are kept for the next writers (up to the 16 MiB
// while any writer is open, 2 MiB once none is), so a stream of uploads does not pay a page fault
// per 4 KiB of fresh buffer.
//
// Lifetime: a writer that is neither committed nor aborted when the garbage collector takes it is
// aborted then (its temporary file removed on the pool), so a client that disconnects mid-upload
// never leaves a partial file visible nor clobbers the previous version. Call w:abort() on error
// paths to free the disk space at once instead of at the next collection.
#pragma once

#include <functional>
#include <lua.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "bindings/fs_atomic_file.hpp"

namespace depot {

class Worker;

// An fs writer as part:pipe and req:pipe (engine/body_pipe.cpp) feed it: body chunks handed over
// from C++, without a Lua string per chunk and without copying them: the writer keeps each chunk
// (shared) until the pool has written it, so a batch is written with one writev from the chunks
// themselves. Same flushes and waits as w:write.
class WriterFeed {
 public:
  enum class Take { taken, busy, failed };
  virtual ~WriterFeed() = default;
  // Takes `data`, which lies in `owner`, keeping `owner` until it is written; or takes nothing
  // and returns busy when that would fill the batch while a write is in flight (wait_ready, then
  // take again); or failed (failure() says why).
  virtual Take take(Worker& worker, std::string_view data,
                    std::shared_ptr<const std::string> owner) = 0;
  // Runs `ready` on the worker's thread once the write in flight is done. It must not hold the
  // writer: the writer holds it until then.
  virtual void wait_ready(std::function<void()> ready) = 0;
  virtual const std::string& failure() const = 0;
};

// The fs writer at `index` if the value is one, else nullptr. Raises, naming `function`, if the
// writer takes no more data (committed, being committed, aborted, or another task waits on it).
std::shared_ptr<WriterFeed> writer_feed(lua_State* L, int index, const char* function);

// Registers the writer's metatable in L's registry; open_fs calls it once.
void create_writer_metatable(lua_State* L);

// fs.writer after its arguments are checked: creates the temporary file (on the pool inside a
// task, inline elsewhere) and returns the writer to Lua, or nil, message.
int open_writer(lua_State* L, std::string path, disk::AtomicFileOptions options);

}  // namespace depot
