// The Lua type of the `buffer` module (bindings/buffer.cpp) as other bindings see it: its bytes
// live in C++ memory, so a binding that sends them (http's opts.body) shares them instead of
// copying them, and holds them for as long as it needs them.
#pragma once

#include <lua.hpp>
#include <memory>
#include <string>

namespace depot {

// The bytes of the buffer at `index`, or null when the value there is not a buffer. The pointer
// is a snapshot: whatever the script does to the buffer afterwards (append, clear) leaves these
// bytes as they are (the buffer then moves to a copy of its own).
std::shared_ptr<const std::string> buffer_bytes(lua_State* L, int index);

}  // namespace depot
