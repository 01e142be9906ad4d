// A plain Lua state with every Depot binding preloaded and a binding context pointing at a fresh
// temporary data dir, for unit tests of bindings that never wait (json, crypto, kv, ...).
// Yielding bindings are tested inside an embedded server instead (tests/support/test_server.hpp).
#pragma once

#include <filesystem>
#include <lua.hpp>
#include <string>

#include "bindings/binding.hpp"

namespace depot::testing {

class LuaFixture {
 public:
  // `config`: the server config document bindings see (e.g. {"kv": {"map_size": ...}}).
  explicit LuaFixture(nlohmann::json config = nlohmann::json::object());
  ~LuaFixture();
  LuaFixture(const LuaFixture&) = delete;
  LuaFixture& operator=(const LuaFixture&) = delete;

  lua_State* state() const { return L_; }
  const std::filesystem::path& data_dir() const { return context_.data_dir; }

  // Runs a chunk; returns "" on success or the error message (with traceback).
  std::string run(const std::string& code, const std::string& chunk_name = "test");
  // Runs a chunk that returns one value and converts it with tostring().
  std::string eval(const std::string& code);

 private:
  lua_State* L_;
  BindingContext context_;
};

}  // namespace depot::testing
