// Lua module `log`: structured log lines from scripts, at a level, bound to the current request.
//
//   log.debug(message [, fields])  log.info(...)  log.warn(...)  log.error(...)
//
// `fields` is a table of extra keys (strings, numbers, booleans). Inside a request the line also
// carries the request id. Keys that look like secrets (authorization, token, password, secret,
// cookie) are replaced by "[redacted]": scripts cannot leak them by accident.
#include "engine/log.hpp"

#include <cstring>
#include <string>

#include "bindings/binding.hpp"
#include "engine/http_util.hpp"
#include "engine/task.hpp"

namespace depot {
namespace {

bool looks_secret(const std::string& key) {
  std::string lower = http::lowercase(key);
  for (const char* word : {"authorization", "token", "password", "secret", "cookie"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

nlohmann::json field_value(lua_State* L, int index) {
  if (index < 0) index = lua_gettop(L) + index + 1;
  switch (lua_type(L, index)) {
    case LUA_TNUMBER: {
      double number = lua_tonumber(L, index);
      if (number == static_cast<double>(static_cast<long long>(number)))
        return static_cast<long long>(number);
      return number;
    }
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) != 0;
    case LUA_TNIL:
      return nullptr;
    default: {
      lua_getglobal(L, "tostring");
      lua_pushvalue(L, index);
      lua_call(L, 1, 1);
      size_t length;
      const char* text = lua_tolstring(L, -1, &length);
      nlohmann::json value = std::string(text ? text : "", text ? length : 0);
      lua_pop(L, 1);
      return value;
    }
  }
}

template <log::Level level>
int log_at(lua_State* L) {
  if (!log::enabled(level)) return 0;
  size_t length;
  const char* message = luaL_checklstring(L, 1, &length);
  nlohmann::json fields = nlohmann::json::object();
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string key = lua_tostring(L, -2);
        fields[key] = looks_secret(key) ? nlohmann::json("[redacted]") : field_value(L, -1);
      }
      lua_pop(L, 1);
    }
  }
  if (Task* task = Task::of_state(L)) {
    if (!task->request_id().empty()) fields["request_id"] = task->request_id();
  }
  log::write(level, std::string_view(message, length), std::move(fields));
  return 0;
}

}  // namespace

int open_log(lua_State* L) {
  const luaL_Reg functions[] = {
      {"debug", log_at<log::Level::debug>},
      {"info", log_at<log::Level::info>},
      {"warn", log_at<log::Level::warn>},
      {"error", log_at<log::Level::error>},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
