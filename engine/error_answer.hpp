// The one path every error answer takes, whoever produces it: the connection (the parser's 4xx,
// 408 for a head or body too slow, 417, 500 for a handler that ended without answering, 503
// without scripts), the runtime (404 / 405 without a route, the deadline's 503 / 500, a Lua
// failure outside the handler's own pcall). The owning service's `service:on_error` shapes it
// when one is set, through the RequestHandler; without a handler, the engine's default shape.
// (Errors raised inside a handler are shaped by the same Lua function, prelude's render_error,
// in the handler's own coroutine.)
#pragma once

#include <string>
#include <string_view>

namespace depot {

class Exchange;
class RequestHandler;

namespace error_answer {

// The engine's own error body: {"error": message, "status": status, "request_id": id}.
std::string default_body(int status, std::string_view message, const std::string& request_id);

// Answers `exchange` with the error, unless its response has started. `allowed` is the Allow
// header of a 405.
void send(RequestHandler* handler, Exchange& exchange, int status, std::string_view message,
          const char* allowed = nullptr);

}  // namespace error_answer
}  // namespace depot
