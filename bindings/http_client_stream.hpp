// The body of a streamed response (http.request with opts.stream): curl's write callback appends
// to a buffer that the calling task drains with body:read(). While more than kHighWater bytes wait
// unread the transfer is paused (CURL_WRITEFUNC_PAUSE) and each read unpauses it, so memory stays
// at about kHighWater per response however fast the upstream and however slow the reader — what
// lets a handler relay a large upstream body (an S3 object) to a slow client.
//
// The reader that waits is resumed through the worker's inbox, never inside the curl callback
// that brought the data (Lua must not run there: it could start another transfer). A reader that
// goes away (the Lua value collected: its request ended) abandons the stream: the next write
// callback stops the transfer.
//
// Worker thread only.
#pragma once

#include <functional>
#include <lua.hpp>
#include <memory>
#include <optional>
#include <string>

#include "engine/task_handle.hpp"

namespace depot {

class HttpBodyStream : public std::enable_shared_from_this<HttpBodyStream> {
 public:
  static constexpr size_t kHighWater = 256 * 1024;

  // `unpause` continues the paused transfer (it may call accept() at once).
  explicit HttpBodyStream(std::function<void()> unpause) : unpause_(std::move(unpause)) {}

  // Transfer side. Takes the bytes (true) or refuses them while the buffer is full (false: pause;
  // curl offers them again once unpaused).
  bool accept(const char* data, size_t size);
  // The transfer ended: `error` is "" at a clean end, else why it failed.
  void finish(std::string error);
  bool abandoned() const { return abandoned_; }

  // Lua side: body:read() → chunk | nil (the end) | nil, err. Waits while no data is there.
  int read(lua_State* L);
  void abandon();

 private:
  int push_available(lua_State* L);
  void wake();

  std::function<void()> unpause_;
  std::string buffer_;
  bool paused_ = false;
  bool finished_ = false;
  bool abandoned_ = false;
  std::string error_;
  std::optional<TaskHandle> reader_;  // a task waiting in read()
};

// Creates the metatable of the Lua readers (once per state, when `http` is opened).
void define_body_stream_metatable(lua_State* L);
// Pushes `stream` as a Lua reader (methods read and close; collecting it closes it).
void push_body_stream(lua_State* L, std::shared_ptr<HttpBodyStream> stream);

}  // namespace depot
