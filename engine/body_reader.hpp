// The request body as the Lua request API sees it: chunk by chunk (req:read), whole (req:body),
// or as multipart parts (req:parts). Each read either answers at once from what the connection
// has buffered or leaves the task waiting; the connection's arrivals wake it (wake_body_reader).
#pragma once

#include <cstddef>
#include <lua.hpp>
#include <memory>
#include <string>

namespace depot {

class Exchange;
class Worker;

namespace body_reader {

enum Mode { chunk = 1, whole = 2, next_part = 3, part_data = 4, piping = 5 };

// A read for the Lua function `function` (req:read, req:body, ...): pushes its results onto L
// and returns their count, or suspends the calling task until wake_body_reader can answer.
// `limit` is the most req:body() may buffer (mode whole). Consumed body lets the connection
// read on (scheduled after the current event batch).
int read(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, int mode,
         size_t limit, const char* function);

// For body_pipe.cpp, which reads as part_data and chunk do.
// Consumed body lets the connection read on: scheduled after the current event batch.
void notice_consumption(Worker& worker, const std::shared_ptr<Exchange>& exchange);
// Feeds buffered body into the exchange's multipart reader until it produced an event; false when
// it must wait. True with no events only at the end of the body; `error` set when the body is
// malformed or failed.
bool fill_events(Worker& worker, const std::shared_ptr<Exchange>& exchange, std::string& error);

}  // namespace body_reader
}  // namespace depot
