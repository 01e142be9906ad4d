// Lua module `buffer`: a growable byte string in C++ memory, for data gathered piece by piece and
// then sent whole — an S3 part (bindings/blob_s3.lua) — without the copies Lua strings cost:
// appending makes no intermediate string, and http sends from the buffer itself (opts.body).
// The manual is docs/lua-api.md (buffer).
//
//   local part = buffer.new(8 * 1024 * 1024)   -- capacity reserved at the first append
//   part:append(chunk [, i [, j]])             -- chunk:sub(i, j), without making that string
//   #part, part:size()                         -- bytes held
//   http.request("PUT", url, { body = part })  -- no copy
//   part:clear()                               -- empty, and its memory freed at once
//
// Sharing: a request in flight holds the bytes it was given. Changing the buffer meanwhile never
// changes what is sent: the buffer then moves to bytes of its own (clear: new empty ones; append:
// a copy, once). The Lua collector does not see this memory, so clear a buffer once done with it
// rather than wait for the collector to free it.
#include "bindings/buffer.hpp"

#include <new>

#include "bindings/binding.hpp"

namespace depot {
namespace {

const char* const kType = "depot.buffer";
constexpr double kMaxCapacity = 4294967296.0;  // 4 GiB: any larger is a mistake

struct Buffer {
  std::shared_ptr<std::string> bytes = std::make_shared<std::string>();
  size_t capacity = 0;  // reserved when the bytes start empty
};

Buffer& check_buffer(lua_State* L, const char* function) {
  auto* buffer = static_cast<Buffer*>(luaL_testudata(L, 1, kType));
  if (buffer == nullptr)
    luaL_error(L, "%s: call it as a method of a buffer (buffer:...)", function);
  return *buffer;
}

// Bytes this buffer may change: its own, not ones a request in flight holds too.
std::string& own_bytes(Buffer& buffer) {
  if (buffer.bytes.use_count() > 1) buffer.bytes = std::make_shared<std::string>(*buffer.bytes);
  return *buffer.bytes;
}

// string.sub's reading of a position: negative counts from the end.
long long relative_position(long long position, size_t length) {
  if (position >= 0) return position;
  if (static_cast<size_t>(-position) > length) return 0;
  return static_cast<long long>(length) + position + 1;
}

// buffer.new([capacity]) → buffer
int buffer_new(lua_State* L) {
  double capacity = optional_integer(L, 1, "buffer.new", "capacity", 0, 0, kMaxCapacity);
  auto* buffer = new (lua_newuserdata(L, sizeof(Buffer))) Buffer();
  buffer->capacity = static_cast<size_t>(capacity);
  luaL_getmetatable(L, kType);
  lua_setmetatable(L, -2);
  return 1;
}

// buffer:append(data [, i [, j]]) → buffer
int buffer_append(lua_State* L) {
  const char* function = "buffer:append";
  Buffer& buffer = check_buffer(L, function);
  std::string_view data = check_string_view(L, 2, function, "data");
  long long first = relative_position(
      static_cast<long long>(optional_integer(L, 3, function, "i", 1, -kMaxCapacity, kMaxCapacity)),
      data.size());
  long long last = relative_position(static_cast<long long>(optional_integer(
                                         L, 4, function, "j", -1, -kMaxCapacity, kMaxCapacity)),
                                     data.size());
  first = std::max(first, 1LL);
  last = std::min(last, static_cast<long long>(data.size()));
  if (first <= last) {
    std::string& bytes = own_bytes(buffer);
    size_t count = static_cast<size_t>(last - first + 1);
    if (bytes.empty() && bytes.capacity() < buffer.capacity) bytes.reserve(buffer.capacity);
    bytes.append(data.substr(static_cast<size_t>(first - 1), count));
  }
  lua_settop(L, 1);
  return 1;
}

// buffer:size() → bytes held (also #buffer)
int buffer_size(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check_buffer(L, "buffer:size").bytes->size()));
  return 1;
}

// buffer:clear() → buffer, empty, its memory freed (the capacity is reserved again when refilled)
int buffer_clear(lua_State* L) {
  check_buffer(L, "buffer:clear").bytes = std::make_shared<std::string>();
  lua_settop(L, 1);
  return 1;
}

int buffer_gc(lua_State* L) {
  static_cast<Buffer*>(lua_touserdata(L, 1))->~Buffer();
  return 0;
}

}  // namespace

std::shared_ptr<const std::string> buffer_bytes(lua_State* L, int index) {
  auto* buffer = static_cast<Buffer*>(luaL_testudata(L, index, kType));
  return buffer != nullptr ? buffer->bytes : nullptr;
}

int open_buffer(lua_State* L) {
  const luaL_Reg methods[] = {
      {"append", buffer_append},
      {"size", buffer_size},
      {"clear", buffer_clear},
      {nullptr, nullptr},
  };
  define_metatable(L, kType, methods, buffer_gc);
  luaL_getmetatable(L, kType);
  lua_pushcfunction(L, buffer_size);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {{"new", buffer_new}, {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
