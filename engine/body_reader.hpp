// The request body as the Lua request API sees it: chunk by chunk (req:read), whole (req:body),
// or as multipart parts (req:parts). Each read either answers at once from what the connection
// has buffered or leaves the task waiting; the connection's arrivals wake it (wake_body_reader).
#pragma once

#include <lua.hpp>

#include <memory>

namespace depot {

class Exchange;
class Worker;

namespace body_reader {

enum Mode { chunk = 1, whole = 2, next_part = 3, part_data = 4 };

// Pushes the read's results onto L and returns their count, or returns -1 when it must wait.
// Consumed body lets the connection read on (scheduled after the current event batch).
int try_read(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, int mode);

}  // namespace body_reader
}  // namespace depot
