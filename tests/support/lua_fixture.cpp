// Plain Lua state for binding unit tests (see lua_fixture.hpp).
#include "tests/support/lua_fixture.hpp"

#include <random>
#include <stdexcept>

namespace depot::testing {
namespace {
std::filesystem::path fresh_directory() {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() /
              ("depot-test-" + std::to_string(random()) + std::to_string(random()));
  std::filesystem::create_directories(path);
  return path;
}

int traceback(lua_State* L) {
  if (!lua_isstring(L, 1) && luaL_callmeta(L, 1, "__tostring")) lua_replace(L, 1);
  const char* message = lua_tostring(L, 1);
  luaL_traceback(L, L, message ? message : "(error object is not a string)", 1);
  return 1;
}
}  // namespace

LuaFixture::LuaFixture(nlohmann::json config) : L_(luaL_newstate()) {
  luaL_openlibs(L_);
  context_.data_dir = fresh_directory();
  context_.config = std::move(config);
  set_binding_context(L_, &context_);
  open_bindings(L_);
}

LuaFixture::~LuaFixture() {
  lua_close(L_);
  std::error_code ignored;
  std::filesystem::remove_all(context_.data_dir, ignored);
}

std::string LuaFixture::run(const std::string& code, const std::string& chunk_name) {
  lua_settop(L_, 0);
  lua_pushcfunction(L_, traceback);
  if (luaL_loadbuffer(L_, code.data(), code.size(), ("=" + chunk_name).c_str()) != 0 ||
      lua_pcall(L_, 0, LUA_MULTRET, 1) != 0) {
    std::string message = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "unknown error";
    lua_settop(L_, 0);
    return message;
  }
  return "";
}

std::string LuaFixture::eval(const std::string& code) {
  lua_settop(L_, 0);
  lua_pushcfunction(L_, traceback);
  if (luaL_loadbuffer(L_, code.data(), code.size(), "=eval") != 0 || lua_pcall(L_, 0, 1, 1) != 0) {
    std::string message = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "unknown error";
    lua_settop(L_, 0);
    throw std::runtime_error(message);
  }
  lua_getglobal(L_, "tostring");
  lua_insert(L_, -2);
  lua_call(L_, 1, 1);
  std::string result = lua_tostring(L_, -1);
  lua_settop(L_, 0);
  return result;
}

}  // namespace depot::testing
