// Fuzz target: the json module's parser and renderers through their Lua API (see targets.hpp).
#include <lua.hpp>
#include <string>

#include "tests/fuzz/targets.hpp"
#include "tests/support/lua_fixture.hpp"

namespace depot::fuzz {
namespace {

// Called with the input text; raises with a description when the module contradicts itself.
const char* const kCheck = R"LUA(
local json = require "json"
local text = ...
local value = json.decode(text)
local canonical = json.python_json(text)
local repr = json.python_repr(text)
if (value == nil) ~= (canonical == nil) or (value == nil) ~= (repr == nil) then
  error("decode, python_json and python_repr disagree on whether this is JSON")
end
if canonical == nil then return end
local again, message = json.python_json(canonical)
if again ~= canonical then
  error("python_json of its own output: " .. tostring(again or message) .. "\nfirst: " .. canonical)
end
local encoded_ok, encoded = pcall(json.encode, value)  -- may refuse: NaN, non-UTF-8 strings
if encoded_ok and json.decode(encoded) == nil then
  error("json.encode wrote text json.decode refuses: " .. encoded)
end
)LUA";

}  // namespace

JsonTarget::JsonTarget() : lua_(std::make_unique<testing::LuaFixture>()) {
  lua_State* L = lua_->state();
  if (luaL_loadbuffer(L, kCheck, std::char_traits<char>::length(kCheck), "=json_target") != 0) {
    throw std::runtime_error(lua_tostring(L, -1));
  }
  check_ = luaL_ref(L, LUA_REGISTRYINDEX);
}

JsonTarget::~JsonTarget() = default;

void JsonTarget::run(std::string_view input) const {
  lua_State* L = lua_->state();
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_);
  lua_pushlstring(L, input.data(), input.size());
  if (lua_pcall(L, 1, 0, 0) != 0) {
    std::string message = lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)";
    lua_settop(L, 0);
    throw FuzzFinding("json: " + message);
  }
}

}  // namespace depot::fuzz
