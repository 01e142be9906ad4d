// The list of Lua modules Depot provides, registered in package.preload, and the helpers every
// module shares: its context, argument checks, result pushers, metatables (see binding.hpp).
#include <cmath>
#include <cstring>
#include <string>

#include "bindings/binding.hpp"
#include "engine/embedded_lua.hpp"

namespace depot {

int open_crypto(lua_State* L);
int open_log(lua_State* L);
int open_json(lua_State* L);
int open_jobs(lua_State* L);
int open_kv(lua_State* L);
int open_fs(lua_State* L);
int open_http_client(lua_State* L);
int open_metrics(lua_State* L);
int open_blob_driver(lua_State* L);
int open_buffer(lua_State* L);
int open_spec_server(lua_State* L);
int open_spec_client(lua_State* L);

namespace {
const char* const kContextKey = "depot.binding_context";

struct Module {
  const char* name;
  lua_CFunction open;
};

const Module kModules[] = {
    {"crypto", open_crypto},    {"log", open_log},         {"json", open_json},
    {"jobs", open_jobs},        {"kv", open_kv},           {"fs", open_fs},
    {"http", open_http_client}, {"metrics", open_metrics}, {"blob_driver", open_blob_driver},
    {"buffer", open_buffer},
};

// Only in the Lua state of `depot test` (open_spec_bindings): what specs need and route scripts
// must not have. `depot.spec` is Lua, compiled in from engine/lua/spec_helpers.lua.
const Module kSpecModules[] = {
    {"spec_server", open_spec_server},
    {"spec_client", open_spec_client},
};
const char* const kSpecHelpers = "spec_helpers";
}  // namespace

void set_binding_context(lua_State* L, BindingContext* context) {
  lua_pushlightuserdata(L, context);
  lua_setfield(L, LUA_REGISTRYINDEX, kContextKey);
}

BindingContext& binding_context(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kContextKey);
  auto* context = static_cast<BindingContext*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (context == nullptr) luaL_error(L, "depot: this Lua state has no binding context");
  return *context;
}

bool serving(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kContextKey);
  auto* context = static_cast<BindingContext*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return context != nullptr && context->worker != nullptr;
}

void require_serving(lua_State* L, const char* function) {
  if (!serving(L)) luaL_error(L, "%s: not available in depot admin (no server running)", function);
}

std::string_view check_string_view(lua_State* L, int index, const char* function,
                                   const char* argument) {
  if (lua_type(L, index) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be a string", function, argument);
  size_t size;
  const char* text = lua_tolstring(L, index, &size);
  return std::string_view(text, size);
}

std::string check_string(lua_State* L, int index, const char* function, const char* argument) {
  return std::string(check_string_view(L, index, function, argument));
}

std::string check_path(lua_State* L, int index, const char* function, const char* argument) {
  std::string path = check_string(L, index, function, argument);
  if (path.empty()) luaL_error(L, "%s: %s must not be empty", function, argument);
  if (path.find('\0') != std::string::npos)
    luaL_error(L, "%s: %s contains a NUL byte", function, argument);
  if (path[0] == '/') return path;
  return (binding_context(L).data_dir / path).string();
}

double check_integer(lua_State* L, int index, const char* function, const char* argument,
                     double min, double max) {
  double value = lua_type(L, index) == LUA_TNUMBER ? lua_tonumber(L, index) : NAN;
  if (!(value >= min && value <= max) || value != std::floor(value)) {
    luaL_error(L, "%s: %s must be an integer %.0f..%.0f", function, argument, min, max);
  }
  return value;
}

double optional_integer(lua_State* L, int index, const char* function, const char* argument,
                        double fallback, double min, double max) {
  if (lua_isnoneornil(L, index)) return fallback;
  return check_integer(L, index, function, argument, min, max);
}

bool check_options(lua_State* L, int index, const char* function,
                   std::initializer_list<const char*> known) {
  if (lua_isnoneornil(L, index)) return false;
  if (!lua_istable(L, index)) luaL_error(L, "%s: options must be a table", function);
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    lua_pop(L, 1);
    bool is_known = false;
    if (lua_type(L, -1) == LUA_TSTRING) {
      for (const char* name : known) {
        is_known = is_known || std::strcmp(lua_tostring(L, -1), name) == 0;
      }
    }
    if (!is_known) {
      const char* name =
          lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
      luaL_error(L, "%s: unknown option %s", function, name);
    }
  }
  return true;
}

int push_failure(lua_State* L, std::string_view message) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  return 2;
}

int push_true(lua_State* L) {
  lua_pushboolean(L, 1);
  return 1;
}

void define_metatable(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc,
                      lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_register(L, nullptr, methods);
  lua_setfield(L, -2, "__index");
  if (gc != nullptr) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  if (tostring != nullptr) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

namespace {
// package.preload loader of a Lua-written module; upvalue 1 is its name.
int load_embedded_module(lua_State* L) {
  const char* name = lua_tostring(L, lua_upvalueindex(1));
  std::string_view source = embedded_lua(name);
  std::string chunk_name = std::string("=") + name;
  if (luaL_loadbuffer(L, source.data(), source.size(), chunk_name.c_str()) != 0) lua_error(L);
  lua_call(L, 0, 1);
  return 1;
}
}  // namespace

void open_bindings(lua_State* L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (const Module& module : kModules) {
    lua_pushcfunction(L, module.open);
    lua_setfield(L, -2, module.name);
  }
  for (const char* name : embedded_lua_modules()) {
    lua_pushstring(L, name);
    lua_pushcclosure(L, load_embedded_module, 1);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 2);
}

void open_spec_bindings(lua_State* L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (const Module& module : kSpecModules) {
    lua_pushcfunction(L, module.open);
    lua_setfield(L, -2, module.name);
  }
  lua_pushstring(L, kSpecHelpers);
  lua_pushcclosure(L, load_embedded_module, 1);
  lua_setfield(L, -2, "depot.spec");
  lua_pop(L, 2);
}

}  // namespace depot
