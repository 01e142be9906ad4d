// The request body as the Lua request API sees it: chunk by chunk (req:read), whole (req:body),
// or as multipart parts (req:parts). Each read either answers at once from what the connection
// has buffered or leaves the task waiting; the connection's arrivals wake it (wake_body_reader).
#pragma once

#include <cstddef>
#include <lua.hpp>
#include <memory>

namespace depot {

class Exchange;
class Worker;

namespace body_reader {

enum Mode { chunk = 1, whole = 2, next_part = 3, part_data = 4 };

// A read for the Lua function `function` (req:read, req:body, ...): pushes its results onto L
// and returns their count, or suspends the calling task until wake_body_reader can answer.
// `limit` is the most req:body() may buffer (mode whole). Consumed body lets the connection
// read on (scheduled after the current event batch).
int read(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, int mode,
         size_t limit, const char* function);

}  // namespace body_reader
}  // namespace depot
