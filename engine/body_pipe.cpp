// Body and part data piped into an fs writer from C++ (see body_pipe.hpp).
#include "engine/body_pipe.hpp"

#include <string_view>

#include "bindings/binding.hpp"
#include "bindings/fs_writer.hpp"
#include "engine/body_reader.hpp"
#include "engine/exchange.hpp"
#include "engine/multipart_reader.hpp"
#include "engine/task.hpp"
#include "engine/task_handle.hpp"
#include "engine/worker.hpp"

namespace depot::body_pipe {
namespace {

using ExchangePtr = std::shared_ptr<Exchange>;

enum class Next { data, end, wait, failed };

// The part's next data (a view into the reader's front event, valid until consume_next, and the
// chunk it lies in), its end, or the body's failure in `error`.
Next next_part_data(Worker& worker, const ExchangePtr& exchange, std::string_view& data,
                    std::shared_ptr<const std::string>& owner, std::string& error) {
  MultipartReader& reader = *exchange->reading().multipart;
  if (reader.events().empty() && !body_reader::fill_events(worker, exchange, error)) {
    return Next::wait;
  }
  if (!error.empty()) return Next::failed;
  if (reader.events().empty()) return Next::end;  // the body ended (finish() found it whole)
  MultipartReader::Event& event = reader.events().front();
  if (!reader.in_part || event.kind == MultipartReader::Event::Kind::part_begin) return Next::end;
  if (event.kind == MultipartReader::Event::Kind::part_end) {
    reader.in_part = false;
    reader.events().pop_front();
    return Next::end;
  }
  data = event.data;
  owner = event.owner;
  return Next::data;
}

Next next_body_data(Worker& worker, const ExchangePtr& exchange, State& pipe,
                    std::string_view& data, std::shared_ptr<const std::string>& owner,
                    std::string& error) {
  if (!pipe.pending) {
    std::string chunk;
    if (!exchange->take_chunk(chunk)) {
      switch (exchange->body_state()) {
        case Exchange::BodyState::complete:
          return Next::end;
        case Exchange::BodyState::failed:
          error = exchange->body_error().empty() ? "request body failed" : exchange->body_error();
          return Next::failed;
        case Exchange::BodyState::receiving:
          return Next::wait;
      }
    }
    pipe.pending = std::make_shared<const std::string>(std::move(chunk));
    body_reader::notice_consumption(worker, exchange);
  }
  data = *pipe.pending;
  owner = pipe.pending;
  return Next::data;
}

void consume_next(const ExchangePtr& exchange, State& pipe) {
  if (pipe.source == Source::part) {
    exchange->reading().multipart->events().pop_front();
  } else {
    pipe.pending.reset();
  }
}

// Ends the pipe with its results: bytes, or nil, message, origin.
int finish(lua_State* L, const ExchangePtr& exchange, const std::string& error,
           const char* origin) {
  BodyReading& reading = exchange->reading();
  uint64_t bytes = reading.pipe->bytes;
  reading.pipe.reset();
  reading.waiter = 0;
  if (error.empty()) {
    lua_pushnumber(L, static_cast<lua_Number>(bytes));
    return 1;
  }
  lua_pushnil(L);
  lua_pushlstring(L, error.data(), error.size());
  lua_pushstring(L, origin);
  return 3;
}

int step(lua_State* L, Worker& worker, const ExchangePtr& exchange);

// The writer resumes the pipe once its write is done. It holds this callback until then, so the
// callback holds neither the writer nor the exchange.
int wait_for_writer(Worker& worker, const ExchangePtr& exchange) {
  State& pipe = *exchange->reading().pipe;
  exchange->reading().waiter = 0;
  Task* task = worker.find_task(pipe.task);
  if (task == nullptr) return -1;  // the task is ending: nothing will resume it
  TaskHandle waiting(*task);
  std::weak_ptr<Exchange> weak = exchange;
  Worker* home = &worker;
  pipe.writer->wait_ready([waiting, weak, home] {
    waiting.resume_here([weak, home](lua_State* coroutine) {
      ExchangePtr exchange = weak.lock();
      if (!exchange || !exchange->reading().pipe) return push_failure(coroutine, "request ended");
      return step(coroutine, *home, exchange);
    });
  });
  return -1;
}

// Moves data until the part or body ends, or something must be waited for (-1, the wait
// arranged: body arrivals resume it through wake_body_reader, the writer through wait_ready).
int step(lua_State* L, Worker& worker, const ExchangePtr& exchange) {
  State& pipe = *exchange->reading().pipe;
  std::string error;
  for (;;) {
    std::string_view data;
    std::shared_ptr<const std::string> owner;
    Next next = pipe.source == Source::part
                    ? next_part_data(worker, exchange, data, owner, error)
                    : next_body_data(worker, exchange, pipe, data, owner, error);
    switch (next) {
      case Next::end:
        return finish(L, exchange, "", nullptr);
      case Next::failed:
        return finish(L, exchange, error, "request");
      case Next::wait:
        exchange->reading().waiter = pipe.task;
        exchange->reading().wait_mode = body_reader::piping;
        return -1;
      case Next::data:
        break;
    }
    if (data.size() > pipe.limit - pipe.bytes) return finish(L, exchange, "too large", "request");
    switch (pipe.writer->take(worker, data, std::move(owner))) {
      case WriterFeed::Take::taken:
        pipe.bytes += data.size();
        consume_next(exchange, pipe);
        break;
      case WriterFeed::Take::busy:
        return wait_for_writer(worker, exchange);
      case WriterFeed::Take::failed:
        return finish(L, exchange, pipe.writer->failure(), "writer");
    }
  }
}

}  // namespace

int pipe(lua_State* L, Worker& worker, const ExchangePtr& exchange, Source source,
         const char* function) {
  uint64_t limit = std::numeric_limits<uint64_t>::max();
  if (check_options(L, 3, function, {"limit"})) {
    lua_getfield(L, 3, "limit");
    if (!lua_isnil(L, -1)) {
      limit = static_cast<uint64_t>(check_integer(L, -1, function, "options.limit", 0, 9e15));
    }
    lua_pop(L, 1);
  }
  std::shared_ptr<WriterFeed> writer = writer_feed(L, 2, function);
  if (!writer) {
    if (!lua_istable(L, 2) && !lua_isuserdata(L, 2)) {
      luaL_error(L, "%s: writer must be an fs writer or an object with a write method", function);
    }
    lua_pushboolean(L, 0);
    if (limit == std::numeric_limits<uint64_t>::max()) return 1;
    lua_pushnumber(L, static_cast<lua_Number>(limit));
    return 2;
  }
  BodyReading& reading = exchange->reading();
  if (reading.pipe || reading.waiter != 0)
    luaL_error(L, "%s: the body is being read already", function);
  if (source == Source::part && !reading.multipart) {
    luaL_error(L, "%s: the request has no multipart part", function);
  }
  Task& task = Task::require(L, function);
  if (source == Source::body && exchange->head().content_length &&
      *exchange->head().content_length > limit) {
    lua_pushnil(L);
    lua_pushliteral(L, "too large");
    lua_pushliteral(L, "request");
    return 3;
  }
  exchange->send_continue_if_expected();
  reading.pipe = std::make_unique<State>(State{source, std::move(writer), limit, 0, {}, task.id()});
  int count = step(L, worker, exchange);
  return count >= 0 ? count : task.suspend(L);
}

int resume(lua_State* coroutine, Worker& worker, const ExchangePtr& exchange) {
  if (!exchange->reading().pipe) return push_failure(coroutine, "request ended");
  return step(coroutine, worker, exchange);
}

}  // namespace depot::body_pipe
