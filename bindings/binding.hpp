// What every Lua binding module shares: how it is opened, and what it may know about where it runs.
//
// A module is one file bindings/<name>.cpp defining `int open_<name>(lua_State* L)`, which pushes
// the module table and returns 1 (the luaopen_* convention). bindings.cpp lists every module in
// package.preload, so scripts load them with `local kv = require "kv"`.
//
// Errors: a binding raises Lua errors whose message names the function and the argument
// ("kv.put: value must be a string or table"), converting C++ exceptions at this boundary.
#pragma once

#include <lua.hpp>

#include <filesystem>
#include <string>
#include <nlohmann/json.hpp>

namespace depot {

class Worker;
class Runtime;

// Where a Lua state runs. Offline states (`depot admin`, unit tests, tools) have no worker:
// bindings that need one raise there (see serving() below); disk bindings block instead.
struct BindingContext {
  std::filesystem::path data_dir = "data";
  nlohmann::json config = nlohmann::json::object();  // the whole server config document
  Worker* worker = nullptr;
  Runtime* runtime = nullptr;  // the script generation this state belongs to
};

// Stores `context` (not owned; it must outlive the state) in the state's registry.
void set_binding_context(lua_State* L, BindingContext* context);
// The context of this state; raises a Lua error if none was set.
BindingContext& binding_context(lua_State* L);

// Whether this state belongs to a running server, that is, has a worker. False in the offline
// state of `depot admin` (and in plain states: unit tests, tools). The one question bindings ask
// before using anything only a server has (timers, waiting, the HTTP client, notify). Never raises.
bool serving(lua_State* L);
// Raises "<function>: not available in depot admin (no server running)" unless serving(L).
void require_serving(lua_State* L, const char* function);

// Argument checks shared by modules; errors name the function and the argument
// ("fs.read: path must be a string").
std::string check_string(lua_State* L, int index, const char* function, const char* argument);
// A path argument: non-empty, no NUL byte; a relative one is taken under the data dir.
std::string check_path(lua_State* L, int index, const char* function, const char* argument);

// Creates the metatable `name` for a userdata type: `methods` as its __index table, and `gc`
// (and `tostring`) when given. Leaves the stack as it found it.
void define_metatable(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc,
                      lua_CFunction tostring = nullptr);

// Registers every module in package.preload.
void open_bindings(lua_State* L);

}  // namespace depot
