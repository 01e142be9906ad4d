// The request/response primitives the prelude builds `req` and `res` on. Each takes the
// exchange userdata first. Functions that wait suspend the calling task (see task.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>

#include "bindings/binding.hpp"
#include "engine/body_pipe.hpp"
#include "engine/body_reader.hpp"
#include "engine/exchange.hpp"
#include "engine/log.hpp"
#include "engine/lua_api.hpp"
#include "engine/static_file.hpp"
#include "engine/task.hpp"
#include "engine/unique_fd.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {
using ExchangePtr = std::shared_ptr<Exchange>;

// Scripts hold an exchange as the id of its request task (a number), resolved through the worker
// (upvalue 1 of every function here): no per-request userdata for the GC, and a `req` kept past
// its request fails cleanly instead of touching freed memory.
const ExchangePtr& check_exchange(lua_State* L) {
  auto* worker = static_cast<Worker*>(lua_touserdata(L, lua_upvalueindex(1)));
  auto handle = static_cast<uint64_t>(luaL_checknumber(L, 1));
  Task* task = worker ? worker->find_task(handle) : nullptr;
  if (task == nullptr || task->exchange() == nullptr)
    luaL_error(L, "depot: the request has finished");
  return task->exchange_pointer();
}

Worker& worker_of(lua_State* L) {
  Worker* worker = binding_context(L).worker;
  if (worker == nullptr) luaL_error(L, "depot: no worker in this state");
  return *worker;
}

void push_string(lua_State* L, std::string_view text) {
  lua_pushlstring(L, text.data(), text.size());
}

int parse_query(lua_State* L) {
  size_t length;
  const char* text = luaL_optlstring(L, 1, "", &length);
  std::string_view query(text, length);
  lua_newtable(L);
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    std::string name = http::percent_decode(pair.substr(0, equals), true);
    std::string value =
        equals == std::string_view::npos ? "" : http::percent_decode(pair.substr(equals + 1), true);
    lua_getfield(L, -1, name.c_str());
    bool seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen) continue;  // the first value of a repeated name wins, as in Flask's request.args
    push_string(L, value);
    lua_setfield(L, -2, name.c_str());
  }
  return 1;
}

int query_string(lua_State* L) {
  push_string(L, check_exchange(L)->head().query);
  return 1;
}

int target(lua_State* L) {
  push_string(L, check_exchange(L)->head().target);
  return 1;
}

int remote_address(lua_State* L) {
  push_string(L, check_exchange(L)->remote_address());
  return 1;
}

int http_version(lua_State* L) {
  const RequestHead& head = check_exchange(L)->head();
  lua_pushfstring(L, "%d.%d", head.http_major, head.http_minor);
  return 1;
}

int headers(lua_State* L) {
  const RequestHead& head = check_exchange(L)->head();
  lua_createtable(L, 0, static_cast<int>(head.headers.size()));
  for (const auto& [name, value] : head.headers) {
    lua_getfield(L, -1, name.c_str());
    if (lua_isstring(L, -1)) {  // repeated header: joined as RFC 9110 allows
      std::string joined = lua_tostring(L, -1);
      joined += ", ";
      joined += value;
      lua_pop(L, 1);
      push_string(L, joined);
    } else {
      lua_pop(L, 1);
      push_string(L, value);
    }
    lua_setfield(L, -2, name.c_str());
  }
  return 1;
}

int header(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  size_t length;
  const char* name = luaL_checklstring(L, 2, &length);
  const std::string* value =
      exchange->head().header(http::lowercase(std::string_view(name, length)));
  if (value == nullptr) return 0;
  push_string(L, *value);
  return 1;
}

int read_body(lua_State* L, int mode, const char* function) {
  ExchangePtr exchange = check_exchange(L);
  size_t limit = mode == body_reader::whole ? static_cast<size_t>(luaL_checknumber(L, 2)) : 0;
  return body_reader::read(L, worker_of(L), exchange, mode, limit, function);
}

int read(lua_State* L) {
  return read_body(L, body_reader::chunk, "req:read");
}
int body(lua_State* L) {
  return read_body(L, body_reader::whole, "req:body");
}
int next_part(lua_State* L) {
  return read_body(L, body_reader::next_part, "req:parts");
}
int read_part(lua_State* L) {
  return read_body(L, body_reader::part_data, "part:read");
}
int pipe_part(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  return body_pipe::pipe(L, worker_of(L), exchange, body_pipe::Source::part, "part:pipe");
}
int pipe_body(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  return body_pipe::pipe(L, worker_of(L), exchange, body_pipe::Source::body, "req:pipe");
}

// Header names and values quoted in errors: control bytes escaped, long ones cut, so that the
// message stays one readable line wherever it is shown.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text.substr(0, 64)) {
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char escaped[5];
      snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (text.size() > 64) out += "...";
  return out + "\"";
}

void check_header(lua_State* L, std::string_view name, std::string_view value,
                  const char* function) {
  if (!http::valid_field_name(name)) {
    luaL_error(L,
               "%s: invalid header name %s (a name is an RFC 9110 token: letters, digits, "
               "!#$%%&'*+-.^_`|~)",
               function, quoted(name).c_str());
  }
  if (!http::valid_field_value(value)) {
    luaL_error(L, "%s: header %s has an invalid value (CR, LF, NUL or another control character)",
               function, quoted(name).c_str());
  }
}

// The status a script answers with: an integer 200..599. Anything else would be written as given
// (a 1xx or 0 with a body desynchronises a kept-alive connection), so it is a script error.
int check_status(lua_State* L, int index, const char* function, const char* argument) {
  lua_Number number = lua_tonumber(L, index);
  bool integer = lua_type(L, index) == LUA_TNUMBER && number >= INT_MIN && number <= INT_MAX &&
                 number == std::floor(number);
  int status = integer ? static_cast<int>(number) : 0;
  if (!integer || !http::valid_final_status(status)) {
    luaL_error(
        L, "%s: %s must be an integer 200..599, got %s", function, argument,
        lua_type(L, index) == LUA_TNUMBER ? lua_tostring(L, index) : luaL_typename(L, index));
  }
  return status;
}

// core.check_response(status, headers, function): raises as res:send would. For answers built in
// Lua that are sent later from C++ (service:on_error, depot.fail).
int check_response(lua_State* L) {
  const char* function = luaL_checkstring(L, 3);
  check_status(L, 1, function, "status");
  headers_from_table(L, 2, function);
  return 0;
}

int send(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  const char* function = luaL_optstring(L, 6, "res:send");
  int status = check_status(L, 2, function, "status");
  http::Headers headers = headers_from_table(L, 3, function);
  size_t length;
  const char* body = luaL_optlstring(L, 4, "", &length);
  if (const char* content_type = lua_tostring(L, 5)) {  // the default when the headers name none
    bool named = false;
    for (const auto& [name, value] : headers) named = named || http::iequals(name, "content-type");
    if (!named) headers.emplace_back("Content-Type", content_type);
  }
  if (exchange->response_started()) luaL_error(L, "%s: the response was already started", function);
  exchange->respond(status, headers, std::string_view(body, length));
  return 0;
}

int set_header(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  size_t name_length;
  const char* name = luaL_checklstring(L, 2, &name_length);
  size_t value_length;
  const char* value = luaL_checklstring(L, 3, &value_length);
  check_header(L, std::string_view(name, name_length), std::string_view(value, value_length),
               "res:header");
  if (exchange->response_started()) luaL_error(L, "res:header: the response was already started");
  exchange->add_response_header(std::string(name, name_length), std::string(value, value_length));
  return 0;
}

int start(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  int status = check_status(L, 2, "res:start", "status");
  http::Headers headers = headers_from_table(L, 3, "res:start");
  std::optional<uint64_t> length;
  if (check_options(L, 4, "res:start", {"length"})) {
    lua_getfield(L, 4, "length");
    if (!lua_isnil(L, -1))
      length = static_cast<uint64_t>(check_integer(L, -1, "res:start", "options.length", 0, 9e15));
    lua_pop(L, 1);
  }
  if (exchange->response_started()) luaL_error(L, "res:start: the response was already started");
  exchange->start_stream(status, headers, length);
  return 0;
}

int write(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  size_t length;
  const char* data = luaL_checklstring(L, 2, &length);
  if (exchange->response_state() != Exchange::ResponseState::streaming) {
    luaL_error(L, "res:write: call res:start() first");
  }
  if (exchange->client_gone()) {
    lua_pushnil(L);
    lua_pushliteral(L, "client closed the connection");
    return 2;
  }
  if (exchange->stream_length() && length > exchange->stream_remaining())
    luaL_error(L, "res:write: more bytes than the length given to res:start");
  bool sent = exchange->write_chunk(std::string_view(data, length));
  if (!sent || !exchange->output_congested()) {
    lua_pushboolean(L, sent);
    return 1;
  }
  Task& task = Task::require(L, "res:write");
  exchange->wait_for_drain(task.id());
  return task.suspend(L);
}

int finish(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  if (exchange->response_state() != Exchange::ResponseState::streaming) return 0;
  exchange->finish_stream();
  return 0;
}

// An optional string option of res:file; "" when absent.
std::string string_option(lua_State* L, int options, const char* key) {
  lua_getfield(L, options, key);
  if (lua_isnil(L, -1)) return "";
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "res:file: options.%s must be a string", key);
  size_t length;
  const char* text = lua_tolstring(L, -1, &length);
  return std::string(text, length);
}

// res:file(path, options): see docs/lua-api.md for the contract. Options are checked before the
// file is looked at, so a bad option is an error whether or not the file exists.
int file(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  const char* path = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (exchange->response_state() == Exchange::ResponseState::done) {
    luaL_error(L, "res:file: the response was already sent");
  }
  if (exchange->response_started()) luaL_error(L, "res:file: the response was already started");
  http::Headers headers =
      (lua_getfield(L, 3, "headers"), headers_from_table(L, lua_gettop(L), "res:file"));
  std::string download_name = string_option(L, 3, "download_name");
  std::string content_type = string_option(L, 3, "content_type");
  if (!http::valid_field_value(content_type)) {
    luaL_error(L,
               "res:file: options.content_type has an invalid value (CR, LF, NUL or another "
               "control character)");
  }
  if (content_type.empty())
    content_type = http::mime_type_for(download_name.empty() ? path : download_name);
  lua_getfield(L, 3, "status");
  int status = lua_isnil(L, -1) ? 200 : check_status(L, -1, "res:file", "options.status");

  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  struct stat info;
  if (!fd.valid() || ::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    int error = errno;
    lua_pushnil(L);
    if (fd.valid() || error == ENOENT || error == ENOTDIR) {
      lua_pushliteral(L, "not found");
    } else {
      lua_pushstring(L, strerror(error));
    }
    return 2;
  }
  static_file::FileFacts facts{static_cast<uint64_t>(info.st_size), info.st_mtim};
  static_file::Answer answer = static_file::decide(
      exchange->head(), facts,
      {status, std::move(content_type), std::move(download_name), std::move(headers)});
  if (answer.send_body) {
    exchange->respond_file(answer.status, answer.headers, std::move(fd),
                           static_cast<off_t>(answer.offset), answer.length);
  } else {
    exchange->respond(answer.status, answer.headers, "");
  }
  lua_pushboolean(L, 1);
  return 1;
}

int response_started(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->response_started());
  return 1;
}

int response_streaming(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->response_state() == Exchange::ResponseState::streaming);
  return 1;
}

int client_gone(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->client_gone());
  return 1;
}

int abort_response(lua_State* L) {
  check_exchange(L)->abort_response();
  return 0;
}

int log_error(lua_State* L) {
  nlohmann::json fields = nlohmann::json::object();
  if (lua_isstring(L, 1)) fields["request_id"] = lua_tostring(L, 1);
  fields["error"] = luaL_checkstring(L, 2);
  log::error("lua error", std::move(fields));
  return 0;
}
}  // namespace

http::Headers headers_from_table(lua_State* L, int index, const char* function) {
  http::Headers headers;
  if (lua_isnoneornil(L, index)) return headers;
  if (!lua_istable(L, index)) luaL_error(L, "%s: headers must be a table", function);
  if (index < 0) index = lua_gettop(L) + index + 1;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: header names must be strings", function);
    size_t name_length;
    const char* name = lua_tolstring(L, -2, &name_length);
    std::string_view checked_name(name, name_length);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
      luaL_error(L, "%s: header %s must be a string or a number", function,
                 quoted(checked_name).c_str());
    }
    lua_pushvalue(L, -1);  // lua_tolstring converts a number in place: not the key lua_next needs
    size_t value_length;
    const char* value = lua_tolstring(L, -1, &value_length);
    std::string_view checked_value(value, value_length);
    check_header(L, checked_name, checked_value, function);
    headers.emplace_back(std::string(checked_name), std::string(checked_value));
    lua_pop(L, 2);
  }
  return headers;
}

void push_exchange_api(lua_State* L, const Limits& limits, Worker* worker) {
  const luaL_Reg functions[] = {
      {"parse_query", parse_query},
      {"query_string", query_string},
      {"target", target},
      {"remote_address", remote_address},
      {"http_version", http_version},
      {"headers", headers},
      {"header", header},
      {"read", read},
      {"body", body},
      {"next_part", next_part},
      {"read_part", read_part},
      {"pipe_part", pipe_part},
      {"pipe_body", pipe_body},
      {"send", send},
      {"set_header", set_header},
      {"check_response", check_response},
      {"start", start},
      {"write", write},
      {"finish", finish},
      {"file", file},
      {"response_started", response_started},
      {"response_streaming", response_streaming},
      {"client_gone", client_gone},
      {"abort_response", abort_response},
      {"log_error", log_error},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  lua_pushlightuserdata(L, worker);
  luaL_openlib(L, nullptr, functions, 1);
  lua_pushnumber(L, static_cast<lua_Number>(limits.max_body_bytes));
  lua_setfield(L, -2, "max_body_bytes");
}

void wake_drain_waiter(Worker& worker, const std::shared_ptr<Exchange>& exchange) {
  if (exchange->drain_waiter() == 0) return;
  Task* task = worker.find_task(exchange->drain_waiter());
  if (task == nullptr || !task->suspended()) return;
  exchange->take_drain_waiter();
  bool gone = exchange->client_gone();
  task->resume([gone](lua_State* coroutine) {
    if (gone) {
      lua_pushnil(coroutine);
      lua_pushliteral(coroutine, "client closed the connection");
      return 2;
    }
    lua_pushboolean(coroutine, 1);
    return 1;
  });
}

}  // namespace depot
