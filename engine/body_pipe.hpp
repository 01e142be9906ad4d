// part:pipe(writer) and req:pipe(writer): the rest of a multipart part, or of the request body,
// moved into an fs writer by C++ with no Lua string per chunk and no copy: the writer keeps the
// body chunks and writes them from there (the pool's writev). The task yields while no body has
// arrived and while the writer's write is in flight; only then does the pipe take the next body
// chunk, so an upload holds what w:write would (the connection's buffered body, one part-filled
// and one flushing batch of chunks) and a slow disk stops the socket being read. Writers that are
// not fs writers (the blob module's S3 writer) are piped by the prelude through writer:write.
#pragma once

#include <cstdint>
#include <limits>
#include <lua.hpp>
#include <memory>
#include <string>

namespace depot {

class Exchange;
class Worker;
class WriterFeed;

namespace body_pipe {

enum class Source { part, body };

// What a pipe keeps between steps (BodyReading::pipe); only body_pipe.cpp touches it.
struct State {
  Source source;
  std::shared_ptr<WriterFeed> writer;
  uint64_t limit = std::numeric_limits<uint64_t>::max();
  uint64_t bytes = 0;                          // taken by the writer so far
  std::shared_ptr<const std::string> pending;  // Source::body: a chunk the writer has not taken
  uint64_t task = 0;                           // the task that pipes
};

// core.pipe_part / core.pipe_body (exchange, writer [, {limit = n}]): `false, limit` when
// `writer` is no fs writer (the prelude's Lua loop pipes it then); otherwise, after waiting,
// `bytes` or `nil, message, origin` with origin "request" (the client went away, a malformed
// body, or more than `limit` bytes: "too large") or "writer" (the writer failed).
int pipe(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, Source source,
         const char* function);

// A pipe that waits for body data goes on (wake_body_reader): results pushed, or -1 to wait more.
int resume(lua_State* coroutine, Worker& worker, const std::shared_ptr<Exchange>& exchange);

}  // namespace body_pipe
}  // namespace depot
