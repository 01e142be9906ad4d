// Lua module `spec_client`: the blocking HTTP client of `depot test`'s specs (libcurl's easy
// interface). Opened only in that command's Lua state (open_spec_bindings). It blocks its caller,
// which is right there and nowhere else: the spec state runs on the command's main thread, not on
// a reactor thread; the servers a spec talks to run on their own threads. Route scripts use the
// `http` module, which waits without blocking. The friendly API is `depot.spec`'s
// server:request (engine/lua/spec_helpers.lua, manual in docs/lua-api.md).
//
//   spec_client.request(method, url, headers, body, timeout) → status, headers, body | nil, err
//
// `headers` is a table of name → value (or nil), `body` a string (or nil), `timeout` seconds.
// Response header names are lower-case; a repeated header's values are joined with ", ".
// Errors: bad arguments raise naming the argument; a failed transfer (refused, timed out) returns
// nil and "spec_client.request: <why>".
#include <curl/curl.h>

#include <map>
#include <memory>
#include <string>

#include "bindings/binding.hpp"
#include "engine/http_util.hpp"
#include "engine/text.hpp"

namespace depot {
namespace {

struct Received {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

size_t on_header(char* data, size_t size, size_t count, void* target) {
  auto& received = *static_cast<Received*>(target);
  std::string_view line(data, size * count);
  size_t colon = line.find(':');
  if (line.rfind("HTTP/", 0) == 0) {
    received.headers.clear();  // a 100 Continue (or a redirect) came first
  } else if (colon != std::string_view::npos) {
    std::string name = http::lowercase(line.substr(0, colon));
    std::string value(trim(line.substr(colon + 1), " \t\r\n"));
    std::string& joined = received.headers[name];
    joined = joined.empty() ? value : joined + ", " + value;
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* target) {
  static_cast<Received*>(target)->body.append(data, size * count);
  return size * count;
}

struct EasyFree {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct ListFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// Header lines from the table at `index`; raises for a name or value that cannot be sent.
std::unique_ptr<curl_slist, ListFree> header_lines(lua_State* L, int index) {
  const char* function = "spec_client.request";
  std::unique_ptr<curl_slist, ListFree> list;
  if (lua_isnoneornil(L, index)) return list;
  luaL_checktype(L, index, LUA_TTABLE);
  // curl sends "Expect: 100-continue" for larger bodies unless told not to; a spec sees exactly
  // the request it wrote.
  list.reset(curl_slist_append(nullptr, "Expect:"));
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || !http::valid_field_name(lua_tostring(L, -2))) {
      luaL_error(L, "%s: headers must be a table of header names to values", function);
    }
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
      luaL_error(L, "%s: headers['%s'] must be a string or number", function, lua_tostring(L, -2));
    }
    std::string value = lua_tostring(L, -1);
    if (!http::valid_field_value(value)) {
      luaL_error(L, "%s: headers['%s'] contains CR, LF, NUL or another control character", function,
                 lua_tostring(L, -2));
    }
    // "Name;" is curl's way to send an empty value ("Name:" would remove the header).
    std::string line = std::string(lua_tostring(L, -2)) + (value.empty() ? ";" : ": " + value);
    list.reset(curl_slist_append(list.release(), line.c_str()));
    lua_pop(L, 1);
  }
  return list;
}

// spec_client.request(method, url, headers, body, timeout) → status, headers, body | nil, err
int request(lua_State* L) {
  const char* function = "spec_client.request";
  std::string method = check_string(L, 1, function, "method");
  if (!http::valid_field_name(method))
    luaL_error(L, "%s: method must be an HTTP method name", function);
  std::string url = check_string(L, 2, function, "url");
  auto headers = header_lines(L, 3);
  bool has_body = !lua_isnoneornil(L, 4);
  std::string body = has_body ? check_string(L, 4, function, "body") : "";
  double timeout = luaL_optnumber(L, 5, 30);
  if (!(timeout > 0 && timeout <= 3600))
    luaL_error(L, "%s: timeout must be 0..3600 seconds", function);

  Received received;
  std::string error;
  {
    std::unique_ptr<CURL, EasyFree> easy(curl_easy_init());
    if (!easy) return push_failure(L, "spec_client.request: curl_easy_init failed");
    char error_buffer[CURL_ERROR_SIZE] = {};
    CURL* handle = easy.get();
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "HEAD") curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    if (has_body) {
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &received);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &received);
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout * 1000));
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode result = curl_easy_perform(handle);
    if (result != CURLE_OK) {
      error = std::string(function) + ": " +
              (error_buffer[0] ? error_buffer : curl_easy_strerror(result));
    }
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &received.status);
  }
  if (!error.empty()) return push_failure(L, error);
  lua_pushinteger(L, static_cast<lua_Integer>(received.status));
  lua_createtable(L, 0, static_cast<int>(received.headers.size()));
  for (const auto& [name, value] : received.headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_pushlstring(L, received.body.data(), received.body.size());
  return 3;
}

}  // namespace

int open_spec_client(lua_State* L) {
  static const luaL_Reg functions[] = {{"request", request}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
