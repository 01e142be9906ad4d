// Lua module `http`: outbound HTTP(S) requests from scripts. The calling task waits (yields) while
// the worker goes on serving; the transfer runs on the worker's curl multi handle
// (http_client_multi.hpp), one request's logic is http_client_request.hpp, and bodies streamed
// through files are http_client_files.hpp. The user-facing manual is docs/lua-api.md (http).
//
//   http.request(method, url [, opts]) → response | nil, err, kind
//   http.get(url [, opts])             → response | nil, err, kind
//   http.post(url, body [, opts])      → response | nil, err, kind
//
// Where: inside a task — a request handler, a timer or job callback, an on_start hook. Elsewhere
// (script load time, plain Lua states, a coroutine the script created itself) the call raises,
// because it could only wait there by blocking the worker. A handler may call a route of its own
// server, even on a single worker thread: nothing blocks.
//
// Errors: wrong arguments raise, naming the function and the argument ("http.get: opts.timeout
// must be a number > 0"). Whatever goes wrong on the way — refused connection, DNS failure,
// timeout, TLS failure, a body over max_body, a file that cannot be read or written — returns
// nil, "http.request: <why>" (from all three functions: the request is what failed) and a kind:
// "timeout", "connect", "file" or "transport". An HTTP error status is not an error: it is a
// response like any other (after the retries, if any).
//
// A hot reload leaves requests in flight alone: their tasks finish in the old generation, on the
// worker's one multi handle, which lives as long as the worker.
//
// Secrets: this module logs nothing; request headers and bodies go nowhere but to the peer.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "bindings/binding.hpp"
#include "bindings/buffer.hpp"
#include "bindings/http_client_multi.hpp"
#include "bindings/http_client_request.hpp"
#include "bindings/http_client_stream.hpp"
#include "engine/http_util.hpp"
#include "engine/runtime.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

constexpr int kMaxRetries = 100;

// ---------------------------------------------------------------------------------------------
// Argument checking. Messages name the function and the argument.

double check_number(lua_State* L, int index, const char* function, const char* argument,
                    double minimum, bool minimum_allowed) {
  double value = lua_tonumber(L, index);
  bool in_range = minimum_allowed ? value >= minimum : value > minimum;
  if (lua_type(L, index) != LUA_TNUMBER || !in_range || !std::isfinite(value)) {
    luaL_error(L, "%s: %s must be a number %s %g", function, argument, minimum_allowed ? ">=" : ">",
               minimum);
  }
  return value;
}

bool check_boolean(lua_State* L, int index, const char* function, const char* argument) {
  if (lua_type(L, index) != LUA_TBOOLEAN)
    luaL_error(L, "%s: %s must be a boolean", function, argument);
  return lua_toboolean(L, index) != 0;
}

std::chrono::milliseconds check_seconds(lua_State* L, int index, const char* function,
                                        const char* argument) {
  double seconds = check_number(L, index, function, argument, 0, false);
  if (seconds > 1e7) luaL_error(L, "%s: %s must be at most 1e7 seconds", function, argument);
  return std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds * 1000))));
}

// A body: a string (copied once, as curl sends while Lua may collect it) or a buffer (shared).
std::shared_ptr<const std::string> check_body(lua_State* L, int index, const char* function,
                                              const char* argument) {
  if (auto bytes = buffer_bytes(L, index)) return bytes;
  if (lua_type(L, index) != LUA_TSTRING)
    luaL_error(L, "%s: %s must be a string or a buffer", function, argument);
  size_t size;
  const char* data = lua_tolstring(L, index, &size);
  return std::make_shared<const std::string>(data, size);
}

void check_headers(lua_State* L, int index, const char* function, HttpClientOptions& options) {
  if (!lua_istable(L, index)) luaL_error(L, "%s: opts.headers must be a table", function);
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: opts.headers keys must be header names", function);
    std::string name = lua_tostring(L, -2);
    if (!http::valid_field_name(name))
      luaL_error(L, "%s: opts.headers: invalid header name '%s'", function, name.c_str());
    int type = lua_type(L, -1);
    if (type != LUA_TSTRING && type != LUA_TNUMBER) {
      luaL_error(L, "%s: opts.headers['%s'] must be a string or number", function, name.c_str());
    }
    size_t size;
    const char* text = lua_tolstring(L, -1, &size);
    std::string value(text, size);
    if (!http::valid_field_value(value)) {
      luaL_error(L, "%s: opts.headers['%s'] contains CR, LF, NUL or another control character",
                 function, name.c_str());
    }
    std::string lower = http::lowercase(name);
    if (lower == "content-type") options.has_content_type = true;
    if (lower == "expect") options.has_expect = true;
    // "Name;" is curl's way to send a header with an empty value ("Name:" would remove it).
    options.header_lines.push_back(value.empty() ? name + ";" : name + ": " + value);
    lua_pop(L, 1);
  }
}

void check_retry_on(lua_State* L, int index, const char* function, HttpClientOptions& options) {
  if (!lua_istable(L, index))
    luaL_error(L, "%s: opts.retry_on must be a list of statuses", function);
  options.retry_on.clear();
  size_t count = lua_objlen(L, index);
  for (size_t i = 1; i <= count; ++i) {
    lua_rawgeti(L, index, static_cast<int>(i));
    double status = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || status != std::floor(status) || status < 100 ||
        status > 599) {
      luaL_error(L, "%s: opts.retry_on must list HTTP statuses (100..599)", function);
    }
    options.retry_on.push_back(static_cast<long>(status));
    lua_pop(L, 1);
  }
}

// Reads the options table at `index` into `options`; unknown names raise (a typo must not be
// silently ignored: "timout = 1" would otherwise wait 30 s).
void check_options(lua_State* L, int index, const char* function, HttpClientOptions& options) {
  if (lua_isnoneornil(L, index)) return;
  if (!lua_istable(L, index)) luaL_error(L, "%s: opts must be a table", function);
  bool string_body = false;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: opts keys must be option names", function);
    std::string name = lua_tostring(L, -2);
    int value = lua_gettop(L);
    if (name == "headers") {
      check_headers(L, value, function, options);
    } else if (name == "body") {
      options.body = check_body(L, value, function, "opts.body");
      options.has_body = true;
      string_body = true;
    } else if (name == "body_file") {
      options.body_file = check_path(L, value, function, "opts.body_file");
      options.has_body = true;
    } else if (name == "output_file") {
      options.output_file = check_path(L, value, function, "opts.output_file");
    } else if (name == "timeout") {
      options.timeout = check_seconds(L, value, function, "opts.timeout");
    } else if (name == "connect_timeout") {
      options.connect_timeout = check_seconds(L, value, function, "opts.connect_timeout");
    } else if (name == "idle_timeout") {
      double seconds = check_number(L, value, function, "opts.idle_timeout", 0, false);
      options.idle_timeout_seconds = static_cast<long>(std::ceil(std::min(seconds, 1e7)));
    } else if (name == "retries") {
      double retries = check_number(L, value, function, "opts.retries", 0, true);
      if (retries != std::floor(retries) || retries > kMaxRetries) {
        luaL_error(L, "%s: opts.retries must be a whole number from 0 to %d", function,
                   kMaxRetries);
      }
      options.retries = static_cast<int>(retries);
    } else if (name == "retry_on") {
      check_retry_on(L, value, function, options);
    } else if (name == "backoff") {
      options.backoff_seconds =
          std::min(check_number(L, value, function, "opts.backoff", 0, true), 3600.0);
    } else if (name == "follow_redirects") {
      options.follow_redirects = check_boolean(L, value, function, "opts.follow_redirects");
    } else if (name == "verify_tls") {
      options.verify_tls = check_boolean(L, value, function, "opts.verify_tls");
    } else if (name == "stream") {
      options.stream = check_boolean(L, value, function, "opts.stream");
    } else if (name == "max_body") {
      options.max_body = static_cast<size_t>(
          std::min(check_number(L, value, function, "opts.max_body", 0, true), 1e15));
    } else {
      luaL_error(L, "%s: unknown option %s", function, name.c_str());
    }
    lua_pop(L, 1);
  }
  if (string_body && !options.body_file.empty()) {
    luaL_error(L, "%s: opts.body and opts.body_file exclude each other", function);
  }
}

// ---------------------------------------------------------------------------------------------
// Starting and finishing

int push_response(lua_State* L, const HttpClientResponse& response) {
  if (!response.error.empty()) {
    lua_pushnil(L);
    lua_pushlstring(L, response.error.data(), response.error.size());
    lua_pushstring(L, response.error_kind);
    return 3;
  }
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, static_cast<lua_Integer>(response.status));
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, response.attempts);
  lua_setfield(L, -2, "attempts");
  lua_createtable(L, 0, static_cast<int>(response.headers.size()));
  for (const auto& [name, value] : response.headers) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  if (response.stream) {
    push_body_stream(L, response.stream);
  } else {
    lua_pushlstring(L, response.body.data(), response.body.size());
  }
  lua_setfield(L, -2, "body");
  if (response.body_in_file) {
    lua_pushnumber(L, static_cast<lua_Number>(response.file_bytes));
    lua_setfield(L, -2, "bytes");
  }
  return 1;
}

// Ends every public function: starts the request and suspends the calling task until the result.
int perform(lua_State* L, Task& task, HttpClientOptions options) {
  TaskHandle waiting(task);
  HttpClientRequest::start(
      HttpClientMulti::of_worker(task.runtime().worker()), std::move(options),
      [waiting] { return waiting.alive(); },
      [waiting](std::shared_ptr<HttpClientResponse> response) {
        waiting.resume_here([response](lua_State* co) { return push_response(co, *response); });
      });
  return task.suspend(L);
}

void check_method(lua_State* L, int index, const char* function, HttpClientOptions& options) {
  options.method = check_string(L, index, function, "method");
  for (char& c : options.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // A method is a token, as a field name is (RFC 9110 §9.1).
  if (!http::valid_field_name(options.method))
    luaL_error(L, "%s: method must be an HTTP method name", function);
}

void check_url(lua_State* L, int index, const char* function, HttpClientOptions& options) {
  options.url = check_string(L, index, function, "url");
  if (options.url.empty() || options.url.find('\0') != std::string::npos) {
    luaL_error(L, "%s: url must be a non-empty string without NUL bytes", function);
  }
}

// POST, PUT and PATCH always carry a body (Content-Length: 0 when none is given).
void settle_body(HttpClientOptions& options) {
  const std::string& method = options.method;
  if (method == "POST" || method == "PUT" || method == "PATCH") options.has_body = true;
}

// http.request(method, url [, opts]) → response | nil, err, kind
//
// Sends one HTTP(S) request and waits for the whole response. `response` is
// {status = 200, headers = {["content-type"] = "..."}, body = "...", attempts = 1} (header names
// lower-case, repeated headers joined with ", "); with opts.output_file and a 2xx status, body is
// "" and `bytes` says how much went to the file. Options: headers, body, body_file, output_file,
// timeout (30), connect_timeout (10), idle_timeout (none), retries (0), retry_on
// ({429, 502, 503, 504}), backoff (0.5), follow_redirects (false), verify_tls (true), max_body
// (64 MiB), stream (false: with true, the call returns once the head is in and `body` is a reader,
// body:read() → chunk | nil | nil, err) — each described in docs/lua-api.md (http).
// Where: inside a task (handler, timer, job, on_start hook). Errors: see the top of the file.
//   local res, err, kind = http.request("PUT", url, { body = data, timeout = 5 })
int http_request(lua_State* L) {
  const char* function = "http.request";
  Task& task = Task::require(L, function);
  HttpClientOptions options;
  check_method(L, 1, function, options);
  check_url(L, 2, function, options);
  check_options(L, 3, function, options);
  settle_body(options);
  return perform(L, task, std::move(options));
}

// http.get(url [, opts]) → response | nil, err, kind
//
// http.request("GET", url, opts). Where and errors: as http.request.
//   local res = assert(http.get("https://example.com/status", { timeout = 5 }))
int http_get(lua_State* L) {
  const char* function = "http.get";
  Task& task = Task::require(L, function);
  HttpClientOptions options;
  check_url(L, 1, function, options);
  check_options(L, 2, function, options);
  return perform(L, task, std::move(options));
}

// http.post(url, body [, opts]) → response | nil, err, kind
//
// http.request("POST", url, opts) with opts.body = body. `body` is a string, or nil for an empty
// body (or to send opts.body_file). Where and errors: as http.request.
//   local res = assert(http.post(url, json.encode(event), { headers = { ["Content-Type"] =
//   json_type } }))
int http_post(lua_State* L) {
  const char* function = "http.post";
  Task& task = Task::require(L, function);
  HttpClientOptions options;
  options.method = "POST";
  check_url(L, 1, function, options);
  check_options(L, 3, function, options);
  if (!lua_isnoneornil(L, 2)) {
    if (!options.body_file.empty())
      luaL_error(L, "%s: body and opts.body_file exclude each other", function);
    options.body = check_body(L, 2, function, "body");
  }
  settle_body(options);
  return perform(L, task, std::move(options));
}

}  // namespace

int open_http_client(lua_State* L) {
  const luaL_Reg functions[] = {
      {"request", http_request},
      {"get", http_get},
      {"post", http_post},
      {nullptr, nullptr},
  };
  define_body_stream_metatable(L);
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
