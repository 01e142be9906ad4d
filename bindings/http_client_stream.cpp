// A streamed response body between curl and a task (see http_client_stream.hpp).
#include "bindings/http_client_stream.hpp"

#include "bindings/binding.hpp"
#include "engine/task.hpp"

namespace depot {
namespace {

const char* const kStreamMetatable = "depot.http.body_stream";

std::shared_ptr<HttpBodyStream>& check_stream(lua_State* L) {
  return *static_cast<std::shared_ptr<HttpBodyStream>*>(luaL_checkudata(L, 1, kStreamMetatable));
}

// body:read() → chunk | nil | nil, err
int stream_read(lua_State* L) {
  std::shared_ptr<HttpBodyStream> stream =
      check_stream(L);  // a copy: the task may outlive L's slot
  return stream->read(L);
}

// body:close(): the rest of the body is not wanted (the transfer stops). Idempotent.
int stream_close(lua_State* L) {
  check_stream(L)->abandon();
  return 0;
}

int stream_gc(lua_State* L) {
  auto& stream = check_stream(L);
  if (stream) stream->abandon();
  stream.~shared_ptr();
  return 0;
}

}  // namespace

bool HttpBodyStream::accept(const char* data, size_t size) {
  if (buffer_.size() >= kHighWater) {
    paused_ = true;
    return false;
  }
  buffer_.append(data, size);
  wake();
  return true;
}

void HttpBodyStream::finish(std::string error) {
  if (finished_) return;
  finished_ = true;
  error_ = std::move(error);
  wake();
}

void HttpBodyStream::abandon() {
  abandoned_ = true;
  buffer_.clear();
  reader_.reset();
  if (paused_ && !finished_) {
    paused_ = false;
    unpause_();  // so that the write callback runs, sees the abandonment and stops the transfer
  }
}

int HttpBodyStream::push_available(lua_State* L) {
  if (!buffer_.empty()) {
    lua_pushlstring(L, buffer_.data(), buffer_.size());
    buffer_.clear();
    if (paused_ && !finished_) {
      paused_ = false;
      unpause_();
    }
    return 1;
  }
  if (finished_) {
    if (!error_.empty()) return push_failure(L, error_);
    lua_pushnil(L);
    return 1;
  }
  return -1;
}

int HttpBodyStream::read(lua_State* L) {
  if (reader_) return luaL_error(L, "body:read: another task is already reading this body");
  int pushed = push_available(L);
  if (pushed >= 0) return pushed;
  Task& task = Task::require(L, "body:read");
  reader_.emplace(task);
  return task.suspend(L);
}

// Through the inbox: this runs inside curl callbacks, where no Lua may run.
void HttpBodyStream::wake() {
  if (!reader_) return;
  TaskHandle reader = *reader_;
  reader_.reset();
  reader.resume([self = shared_from_this()](lua_State* co) { return self->push_available(co); });
}

void define_body_stream_metatable(lua_State* L) {
  const luaL_Reg methods[] = {{"read", stream_read}, {"close", stream_close}, {nullptr, nullptr}};
  define_metatable(L, kStreamMetatable, methods, stream_gc);
}

void push_body_stream(lua_State* L, std::shared_ptr<HttpBodyStream> stream) {
  void* memory = lua_newuserdata(L, sizeof(std::shared_ptr<HttpBodyStream>));
  new (memory) std::shared_ptr<HttpBodyStream>(std::move(stream));
  luaL_getmetatable(L, kStreamMetatable);
  lua_setmetatable(L, -2);
}

}  // namespace depot
