// The engine's Lua surface: the primitives the prelude builds requests and responses on
// (lua_exchange.cpp) and the `depot` module scripts require (lua_depot_module.cpp).
#pragma once

#include <lua.hpp>
#include <memory>

#include "engine/http_util.hpp"
#include "engine/options.hpp"

namespace depot {

class Exchange;
class Worker;

// Pushes the table of request/response primitives handed to the prelude. Scripts refer to an
// exchange by its request task's id; `worker` (null offline) resolves it.
void push_exchange_api(lua_State* L, const Limits& limits, Worker* worker);
// Reads a Lua table of header name → value (nil or absent table: none). Raises, naming
// `function`, for a name that is not a token, a value with CR, LF, NUL or another control, or a
// value that is neither string nor number. The engine's own use (Runtime::render_error) reads
// what the prelude's render_error has already checked, so it does not raise there.
http::Headers headers_from_table(lua_State* L, int index,
                                 const char* function = "service:on_error");
// Registers the `depot` module in package.preload; `prelude_ref` is the prelude's table.
void register_depot_module(lua_State* L, int prelude_ref);

}  // namespace depot
