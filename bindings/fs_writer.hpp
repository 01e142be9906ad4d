// The write stream of the `fs` module (fs.writer): a Lua object that takes chunks as a request
// body arrives and lands them in a disk::AtomicFile (temporary file, incremental hash, rename on
// commit) without the reactor ever waiting on the disk.
//
// How it spends round trips and memory: w:write(chunk) appends to a memory buffer; once the
// buffer holds 64 KiB it is handed to the thread pool as one write and the call returns at once.
// The task yields when a buffer fills while the previous write is still running, so at most one
// write is in flight and one buffer fills per writer: about 2 × 64 KiB (plus one chunk larger than
// that), which is what lets 500 concurrent uploads stay in a few hundred KiB each. The request
// body waiting in the connection meanwhile keeps the pool busy; 64 KiB writes cost the same disk
// throughput as 1 MiB ones. A failed background write is reported by the next call (write or
// commit).
//
// Lifetime: a writer that is neither committed nor aborted when the garbage collector takes it is
// aborted then (its temporary file removed on the pool), so a client that disconnects mid-upload
// never leaves a partial file visible nor clobbers the previous version. Call w:abort() on error
// paths to free the disk space at once instead of at the next collection.
#pragma once

#include <lua.hpp>
#include <string>

#include "bindings/fs_atomic_file.hpp"

namespace depot {

// Registers the writer's metatable in L's registry; open_fs calls it once.
void create_writer_metatable(lua_State* L);

// fs.writer after its arguments are checked: creates the temporary file (on the pool inside a
// task, inline elsewhere) and returns the writer to Lua, or nil, message.
int open_writer(lua_State* L, std::string path, disk::AtomicFileOptions options);

}  // namespace depot
