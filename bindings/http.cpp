// Lua module `http`: outbound HTTP from request handlers, timers and jobs; the calling task waits
// while the worker serves others (libcurl multi on the worker's epoll set: bindings/curl_driver).
//
//   http.request(method, url [, options]) → response | nil, err, kind
//   http.get(url [, options])             http.post(url, body [, options])
//
// options: headers (table), body (string), body_file (path streamed as the body), timeout (total
// seconds, default 30), connect_timeout (default 10), idle_timeout (abort when no byte moves for
// that long), retries (default 0) with retry_on (statuses, default {429, 502, 503, 504}) and
// backoff (first delay in seconds, doubling; default 0.5) — transport errors are retried too —,
// follow_redirects (default false; at most 5), verify_tls (default true), output_file (the body
// goes to that path, written as <path>.part and renamed when complete, whatever the status),
// max_body (largest body kept as a string, default 64 MiB).
// response: {status = 200, headers = {lower-case name = value}, body = "...", attempts = n}.
// A transfer that fails gives nil, "http.request: <what>", kind ("timeout", "connect",
// "transport"). An HTTP error status is a response, not a failure.
// Where: inside a task only (a handler, timer, job or start hook). Request headers and bodies are
// never logged. A handler may call its own server (even with one worker thread): nothing blocks.
#include <cmath>

#include "bindings/binding.hpp"
#include "bindings/curl_driver.hpp"
#include "engine/runtime.hpp"
#include "engine/task.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

double number_option(lua_State* L, int options, const char* name, double fallback) {
  lua_getfield(L, options, name);
  double value = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : fallback;
  if (!lua_isnil(L, -1) && !lua_isnumber(L, -1)) luaL_error(L, "http.request: option %s must be a number", name);
  lua_pop(L, 1);
  return value;
}

std::string string_option(lua_State* L, int options, const char* name) {
  lua_getfield(L, options, name);
  std::string value;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t length;
    const char* text = lua_tolstring(L, -1, &length);
    value.assign(text, length);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "http.request: option %s must be a string", name);
  }
  lua_pop(L, 1);
  return value;
}

bool boolean_option(lua_State* L, int options, const char* name, bool fallback) {
  lua_getfield(L, options, name);
  bool value = lua_isnil(L, -1) ? fallback : lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return value;
}

HttpRequest read_request(lua_State* L, int method_index, int url_index, int options) {
  HttpRequest request;
  request.method = luaL_checkstring(L, method_index);
  for (char& c : request.method) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  request.url = luaL_checkstring(L, url_index);
  if (!lua_istable(L, options)) return request;
  lua_getfield(L, options, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
        std::string value = lua_tostring(L, -1);
        if (value.find_first_of("\r\n") != std::string::npos) luaL_error(L, "http.request: a header value holds a line break");
        request.headers.emplace_back(lua_tostring(L, -2), value);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  request.body = string_option(L, options, "body");
  request.body_file = string_option(L, options, "body_file");
  request.output_file = string_option(L, options, "output_file");
  request.timeout_ms = static_cast<long>(number_option(L, options, "timeout", 30) * 1000);
  request.connect_timeout_ms = static_cast<long>(number_option(L, options, "connect_timeout", 10) * 1000);
  request.idle_timeout_s = static_cast<long>(std::ceil(number_option(L, options, "idle_timeout", 0)));
  request.retries = static_cast<int>(number_option(L, options, "retries", 0));
  request.backoff_s = number_option(L, options, "backoff", 0.5);
  request.follow_redirects = boolean_option(L, options, "follow_redirects", false);
  request.verify_tls = boolean_option(L, options, "verify_tls", true);
  request.max_body = static_cast<size_t>(number_option(L, options, "max_body", 64.0 * 1024 * 1024));
  lua_getfield(L, options, "retry_on");
  if (lua_istable(L, -1)) {
    request.retry_on.clear();
    for (int i = 1;; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      request.retry_on.insert(static_cast<long>(lua_tonumber(L, -1)));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return request;
}

int push_response(lua_State* L, const HttpResponse& response) {
  if (!response.error.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, ("http.request: " + response.error).c_str());
    lua_pushstring(L, response.error_kind.c_str());
    return 3;
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, static_cast<lua_Integer>(response.status));
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, response.body.data(), response.body.size());
  lua_setfield(L, -2, "body");
  lua_pushinteger(L, response.attempts);
  lua_setfield(L, -2, "attempts");
  lua_createtable(L, 0, static_cast<int>(response.headers.size()));
  for (const auto& [name, value] : response.headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");
  return 1;
}

int perform(lua_State* L, HttpRequest request) {
  Task& task = Task::require(L, "http.request");
  Worker& worker = task.runtime().worker();
  uint64_t id = task.id();
  std::string error = CurlDriver::of(worker).start(std::move(request), [&worker, id](HttpResponse& response) {
    auto result = std::make_shared<HttpResponse>(std::move(response));
    if (Task* waiting = worker.find_task(id)) {
      waiting->resume([result](lua_State* co) { return push_response(co, *result); });
    }
  });
  if (!error.empty()) {
    lua_pushnil(L);
    lua_pushstring(L, ("http.request: " + error).c_str());
    lua_pushliteral(L, "transport");
    return 3;
  }
  return task.suspend(L);
}

int request(lua_State* L) { return perform(L, read_request(L, 1, 2, 3)); }

int get(lua_State* L) {
  lua_pushliteral(L, "GET");
  return perform(L, read_request(L, lua_gettop(L), 1, 2));
}

int post(lua_State* L) {
  lua_settop(L, 3);
  if (!lua_istable(L, 3)) {
    lua_newtable(L);
    lua_replace(L, 3);
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, 3, "body");
  lua_pushliteral(L, "POST");
  return perform(L, read_request(L, 4, 1, 3));
}

}  // namespace

int open_http(lua_State* L) {
  const luaL_Reg functions[] = {{"request", request}, {"get", get}, {"post", post}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
