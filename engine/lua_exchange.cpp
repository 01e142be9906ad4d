// The request/response primitives the prelude builds `req` and `res` on. Each takes the
// exchange userdata first. Functions that wait suspend the calling task (see task.hpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/binding.hpp"
#include "engine/body_reader.hpp"
#include "engine/connection.hpp"
#include "engine/exchange.hpp"
#include "engine/log.hpp"
#include "engine/lua_api.hpp"
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
  if (task == nullptr || task->exchange() == nullptr) luaL_error(L, "depot: the request has finished");
  return task->exchange_pointer();
}

Worker& worker_of(lua_State* L) {
  Worker* worker = binding_context(L).worker;
  if (worker == nullptr) luaL_error(L, "depot: no worker in this state");
  return *worker;
}

void push_string(lua_State* L, std::string_view text) { lua_pushlstring(L, text.data(), text.size()); }

// Sending on an exchange whose response already started is a script bug worth a clear error.
Connection* writable_connection(lua_State* L, Exchange& exchange, const char* function) {
  if (exchange.response_state == Exchange::ResponseState::done) {
    luaL_error(L, "%s: the response was already sent", function);
  }
  return exchange.connection;
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
    std::string value = equals == std::string_view::npos ? "" : http::percent_decode(pair.substr(equals + 1), true);
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
  push_string(L, check_exchange(L)->head.query);
  return 1;
}

int target(lua_State* L) {
  push_string(L, check_exchange(L)->head.target);
  return 1;
}

int remote_address(lua_State* L) {
  push_string(L, check_exchange(L)->remote_address);
  return 1;
}

int http_version(lua_State* L) {
  const RequestHead& head = check_exchange(L)->head;
  lua_pushfstring(L, "%d.%d", head.http_major, head.http_minor);
  return 1;
}

int headers(lua_State* L) {
  const RequestHead& head = check_exchange(L)->head;
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
  const std::string* value = exchange->head.header(http::lowercase(std::string_view(name, length)));
  if (value == nullptr) return 0;
  push_string(L, *value);
  return 1;
}

int read_body(lua_State* L, int mode, const char* function) {
  ExchangePtr exchange = check_exchange(L);
  if (mode == body_reader::whole) {
    exchange->body_limit = static_cast<size_t>(luaL_checknumber(L, 2));
  }
  Worker& worker = worker_of(L);
  int count = body_reader::try_read(L, worker, exchange, mode);
  if (count >= 0) return count;
  Task& task = Task::require(L, function);
  exchange->body_waiter = task.id();
  exchange->body_wait_mode = mode;
  return task.suspend(L);
}

int read(lua_State* L) { return read_body(L, body_reader::chunk, "req:read"); }
int body(lua_State* L) { return read_body(L, body_reader::whole, "req:body"); }
int next_part(lua_State* L) { return read_body(L, body_reader::next_part, "req:parts"); }
int read_part(lua_State* L) { return read_body(L, body_reader::part_data, "part:read"); }

int send(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  int status = static_cast<int>(luaL_checkinteger(L, 2));
  if (status < 100 || status > 999) luaL_error(L, "res:send: status must be 100..999, got %d", status);
  http::Headers headers = headers_from_table(L, 3);
  size_t length;
  const char* body = luaL_optlstring(L, 4, "", &length);
  if (const char* content_type = lua_tostring(L, 5)) {  // the default when the headers name none
    bool named = false;
    for (const auto& [name, value] : headers) named = named || http::iequals(name, "content-type");
    if (!named) headers.emplace_back("Content-Type", content_type);
  }
  if (exchange->response_started()) luaL_error(L, "res:send: the response was already started");
  if (Connection* connection = exchange->connection) {
    connection->respond(*exchange, status, headers, std::string_view(body, length));
  } else {
    exchange->response_state = Exchange::ResponseState::done;
  }
  return 0;
}

int set_header(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  const char* name = luaL_checkstring(L, 2);
  const char* value = luaL_checkstring(L, 3);
  if (exchange->response_started()) luaL_error(L, "res:header: the response was already started");
  exchange->response_headers.emplace_back(name, value);
  return 0;
}

int start(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  int status = static_cast<int>(luaL_checkinteger(L, 2));
  http::Headers headers = headers_from_table(L, 3);
  if (exchange->response_started()) luaL_error(L, "res:start: the response was already started");
  if (Connection* connection = exchange->connection) {
    connection->start_stream(*exchange, status, headers);
  } else {
    exchange->response_state = Exchange::ResponseState::streaming;
  }
  return 0;
}

int write(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  size_t length;
  const char* data = luaL_checklstring(L, 2, &length);
  if (exchange->response_state != Exchange::ResponseState::streaming) {
    luaL_error(L, "res:write: call res:start() first");
  }
  Connection* connection = exchange->connection;
  if (connection == nullptr) {
    lua_pushnil(L);
    lua_pushliteral(L, "client closed the connection");
    return 2;
  }
  connection->write_chunk(*exchange, std::string_view(data, length));
  if (exchange->connection == nullptr || !exchange->connection->output_congested()) {
    lua_pushboolean(L, exchange->connection != nullptr);
    return 1;
  }
  Task& task = Task::require(L, "res:write");
  exchange->drain_waiter = task.id();
  return task.suspend(L);
}

int finish(lua_State* L) {
  const ExchangePtr& exchange = check_exchange(L);
  if (exchange->response_state != Exchange::ResponseState::streaming) return 0;
  if (Connection* connection = exchange->connection) {
    connection->finish_stream(*exchange);
  } else {
    exchange->response_state = Exchange::ResponseState::done;
  }
  return 0;
}

std::string etag_for(const struct stat& info) {
  char text[64];
  snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(info.st_size),
           static_cast<unsigned long long>(info.st_mtim.tv_sec) * 1000000000ULL +
               static_cast<unsigned long long>(info.st_mtim.tv_nsec));
  return text;
}

bool etag_listed(const std::string& header, const std::string& etag) {
  if (header.find('*') != std::string::npos) return true;
  return header.find(etag) != std::string::npos;
}

std::string content_disposition(const std::string& name) {
  std::string ascii;
  std::string encoded;
  for (unsigned char c : name) {
    ascii.push_back(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '_' : static_cast<char>(c));
    if (isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded.push_back(static_cast<char>(c));
    } else {
      char escaped[4];
      snprintf(escaped, sizeof escaped, "%%%02X", c);
      encoded.append(escaped);
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

// res:file(path, options): see the prelude for the contract.
int file(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  const char* path = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  Connection* connection = writable_connection(L, *exchange, "res:file");
  if (exchange->response_started()) luaL_error(L, "res:file: the response was already started");
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
  if (connection == nullptr) {
    exchange->response_state = Exchange::ResponseState::done;
    lua_pushboolean(L, 1);
    return 1;
  }
  http::Headers headers = (lua_getfield(L, 3, "headers"), headers_from_table(L, lua_gettop(L)));
  lua_getfield(L, 3, "download_name");
  std::string download_name = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_getfield(L, 3, "content_type");
  std::string content_type = lua_isstring(L, -1)
                                 ? lua_tostring(L, -1)
                                 : std::string(http::mime_type_for(download_name.empty() ? path : download_name));
  lua_getfield(L, 3, "status");
  int status = lua_isnumber(L, -1) ? static_cast<int>(lua_tointeger(L, -1)) : 200;

  std::string etag = etag_for(info);
  headers.emplace_back("ETag", etag);
  headers.emplace_back("Last-Modified", http::http_date(info.st_mtim.tv_sec));
  headers.emplace_back("Accept-Ranges", "bytes");
  if (!download_name.empty()) headers.emplace_back("Content-Disposition", content_disposition(download_name));

  const RequestHead& head = exchange->head;
  bool not_modified = false;
  if (const std::string* match = head.header("if-none-match")) {
    not_modified = etag_listed(*match, etag);
  } else if (const std::string* since = head.header("if-modified-since")) {
    auto when = http::parse_http_date(*since);
    not_modified = when && *when >= info.st_mtim.tv_sec;
  }
  if (not_modified && (head.method == "GET" || head.method == "HEAD")) {
    connection->respond_file(*exchange, 304, headers, std::move(fd), 0, 0);
    lua_pushboolean(L, 1);
    return 1;
  }
  headers.emplace_back("Content-Type", content_type);
  uint64_t size = static_cast<uint64_t>(info.st_size);
  const std::string* range_header = head.header("range");
  const std::string* if_range = head.header("if-range");
  if (range_header && status == 200 && (if_range == nullptr || *if_range == etag)) {
    http::ByteRange range{};
    switch (http::parse_range(*range_header, size, range)) {
      case http::RangeResult::satisfiable:
        headers.emplace_back("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                  std::to_string(range.last) + "/" + std::to_string(size));
        connection->respond_file(*exchange, 206, headers, std::move(fd), static_cast<off_t>(range.first),
                                 range.last - range.first + 1);
        lua_pushboolean(L, 1);
        return 1;
      case http::RangeResult::unsatisfiable:
        headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        connection->respond(*exchange, 416, headers, "");
        lua_pushboolean(L, 1);
        return 1;
      case http::RangeResult::none: break;
    }
  }
  connection->respond_file(*exchange, status, headers, std::move(fd), 0, size);
  lua_pushboolean(L, 1);
  return 1;
}

int response_started(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->response_started());
  return 1;
}

int response_streaming(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->response_state == Exchange::ResponseState::streaming);
  return 1;
}

int client_gone(lua_State* L) {
  lua_pushboolean(L, check_exchange(L)->client_gone());
  return 1;
}

int abort_response(lua_State* L) {
  ExchangePtr exchange = check_exchange(L);
  exchange->response_state = Exchange::ResponseState::done;
  if (Connection* connection = exchange->connection) connection->close();
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

http::Headers headers_from_table(lua_State* L, int index) {
  http::Headers headers;
  if (!lua_istable(L, index)) return headers;
  if (index < 0) index = lua_gettop(L) + index + 1;
  lua_pushnil(L);
  while (lua_next(L, index) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      size_t name_length;
      const char* name = lua_tolstring(L, -2, &name_length);
      lua_pushvalue(L, -1);
      size_t value_length;
      const char* value = lua_tolstring(L, -1, &value_length);
      std::string_view checked(value, value_length);
      // A CR or LF in a value would let a script (or its caller's input) inject headers.
      if (checked.find_first_of("\r\n") == std::string_view::npos) {
        headers.emplace_back(std::string(name, name_length), std::string(checked));
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
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
      {"send", send},
      {"set_header", set_header},
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
  if (exchange->drain_waiter == 0) return;
  Task* task = worker.find_task(exchange->drain_waiter);
  if (task == nullptr || !task->suspended()) return;
  exchange->drain_waiter = 0;
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
