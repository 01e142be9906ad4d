// What every Lua binding module shares: how it is opened, and what it may know about where it runs.
//
// A module is one file bindings/<name>.cpp defining `int open_<name>(lua_State* L)`, which pushes
// the module table and returns 1 (the luaopen_* convention). bindings.cpp lists every module in
// package.preload, so scripts load them with `local kv = require "kv"`.
//
// Errors: a binding raises Lua errors whose message names the function and the argument
// ("kv.put: value must be a string or table"), converting C++ exceptions at this boundary. The
// checks and result pushers below are the ones every module uses; a binding that waits resumes
// its task through engine/task_handle.hpp (or engine/blocking.hpp for work on the thread pool).
#pragma once

#include <filesystem>
#include <initializer_list>
#include <lua.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

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
// ("fs.read: path must be a string"). They raise, so call them before any work starts.
//
// A string argument (numbers are not coerced): "<function>: <argument> must be a string".
std::string check_string(lua_State* L, int index, const char* function, const char* argument);
// The same without a copy: the view lives as long as the Lua value stays on the stack.
std::string_view check_string_view(lua_State* L, int index, const char* function,
                                   const char* argument);
// A path argument: non-empty, no NUL byte; a relative one is taken under the data dir.
std::string check_path(lua_State* L, int index, const char* function, const char* argument);
// An integer argument in [min, max] (both below 2^53, so exact as doubles):
// "<function>: <argument> must be an integer <min>..<max>".
double check_integer(lua_State* L, int index, const char* function, const char* argument,
                     double min, double max);
// The same, `fallback` when the value is nil.
double optional_integer(lua_State* L, int index, const char* function, const char* argument,
                        double fallback, double min, double max);
// The optional options table at `index`: false when it is nil, true when it is a table whose
// keys are all in `known`. Raises "<function>: options must be a table" and "<function>: unknown
// option <name>", so that a typo such as {fsnyc = true} fails loudly instead of being ignored.
bool check_options(lua_State* L, int index, const char* function,
                   std::initializer_list<const char*> known);

// Results shared by modules. Failures the caller should handle (the disk, the network) return
// `nil, message` and never raise; each returns how many values it pushed.
int push_failure(lua_State* L, std::string_view message);
int push_true(lua_State* L);

// Creates the metatable `name` for a userdata type: `methods` as its __index table, and `gc`
// (and `tostring`) when given. Leaves the stack as it found it.
void define_metatable(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc,
                      lua_CFunction tostring = nullptr);

// Registers every module in package.preload.
void open_bindings(lua_State* L);
// Registers the modules of `depot test`'s spec state (spec_server, spec_client, depot.spec) too.
void open_spec_bindings(lua_State* L);

}  // namespace depot
