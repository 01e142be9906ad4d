// Lua sources compiled into the engine (engine/lua/*.lua), looked up by file name without ".lua".
#pragma once
#include <string_view>
#include <vector>

namespace depot {
// Returns an empty view when no embedded file has that name.
std::string_view embedded_lua(const char* name);
// The Lua-written modules (bindings/*.lua), preloaded under their file names.
std::vector<const char*> embedded_lua_modules();
}  // namespace depot
