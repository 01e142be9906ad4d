// The list of Lua modules Depot provides, registered in package.preload (see binding.hpp).
#include "bindings/binding.hpp"

namespace depot {

int open_crypto(lua_State* L);
int open_log(lua_State* L);
int open_json(lua_State* L);

namespace {
const char* const kContextKey = "depot.binding_context";

struct Module {
  const char* name;
  lua_CFunction open;
};

const Module kModules[] = {
    {"crypto", open_crypto},
    {"log", open_log},
    {"json", open_json},
};
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

void open_bindings(lua_State* L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (const Module& module : kModules) {
    lua_pushcfunction(L, module.open);
    lua_setfield(L, -2, module.name);
  }
  lua_pop(L, 2);
}

}  // namespace depot
