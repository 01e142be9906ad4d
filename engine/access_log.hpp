// One structured line per request (level info, msg "request"): id, method, path, status, bytes,
// duration. Lines from a worker thread are buffered and written once per event batch, so the
// access log costs no extra syscall per request.
#pragma once

#include "engine/exchange.hpp"

namespace depot::access_log {

void write(const Exchange& exchange, uint64_t bytes, Clock::time_point now,
           const char* note = nullptr);
// Writes this thread's buffered lines (called by the worker after each event batch).
void flush();

}  // namespace depot::access_log
