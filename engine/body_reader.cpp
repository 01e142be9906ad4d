// Body reads for the Lua request API (see body_reader.hpp).
#include "engine/body_reader.hpp"

#include "bindings/binding.hpp"
#include "engine/body_pipe.hpp"
#include "engine/exchange.hpp"
#include "engine/multipart_reader.hpp"
#include "engine/task.hpp"
#include "engine/worker.hpp"

namespace depot::body_reader {

void notice_consumption(Worker& worker, const std::shared_ptr<Exchange>& exchange) {
  BodyReading& reading = exchange->reading();
  if (reading.consumption_noticed || exchange->client_gone()) return;
  reading.consumption_noticed = true;
  worker.defer([exchange] {
    exchange->reading().consumption_noticed = false;
    exchange->body_consumed();
  });
}

// Feeds buffered body into the parser until it produced an event (see body_reader.hpp).
bool fill_events(Worker& worker, const std::shared_ptr<Exchange>& exchange, std::string& error) {
  MultipartReader& reader = *exchange->reading().multipart;
  std::string chunk;
  bool consumed = false;
  while (reader.events().empty()) {
    if (!exchange->take_chunk(chunk)) break;
    consumed = true;
    try {
      reader.feed(std::move(chunk));
    } catch (const MultipartError& e) {
      error = e.what();
      break;
    }
  }
  if (consumed) notice_consumption(worker, exchange);
  if (!error.empty() || !reader.events().empty()) return true;
  if (exchange->body_state() == Exchange::BodyState::failed) {
    error = exchange->body_error();
    return true;
  }
  if (exchange->body_state() == Exchange::BodyState::complete) {
    try {
      reader.finish();
    } catch (const MultipartError& e) {
      error = e.what();
    }
    return true;
  }
  return false;
}

namespace {

int push_body_failure(lua_State* L, const Exchange& exchange) {
  return push_failure(
      L, exchange.body_error().empty() ? "request body failed" : exchange.body_error());
}

int read_chunk(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange) {
  std::string chunk;
  if (exchange->take_chunk(chunk)) {
    notice_consumption(worker, exchange);
    lua_pushlstring(L, chunk.data(), chunk.size());
    return 1;
  }
  switch (exchange->body_state()) {
    case Exchange::BodyState::complete:
      lua_pushnil(L);
      return 1;
    case Exchange::BodyState::failed:
      return push_body_failure(L, *exchange);
    case Exchange::BodyState::receiving:
      return -1;
  }
  return -1;
}

int read_whole(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange) {
  Exchange& x = *exchange;
  BodyReading& reading = x.reading();
  if (x.head().content_length && *x.head().content_length > reading.limit) {
    return push_failure(L, "too large");
  }
  std::string chunk;
  bool consumed = false;
  while (x.take_chunk(chunk)) {
    consumed = true;
    if (reading.whole.size() + chunk.size() > reading.limit) {
      reading.whole.clear();
      return push_failure(L, "too large");
    }
    reading.whole.append(chunk);
  }
  if (consumed) notice_consumption(worker, exchange);
  switch (x.body_state()) {
    case Exchange::BodyState::complete:
      lua_pushlstring(L, reading.whole.data(), reading.whole.size());
      reading.whole = std::string();
      return 1;
    case Exchange::BodyState::failed:
      return push_body_failure(L, x);
    case Exchange::BodyState::receiving:
      return -1;
  }
  return -1;
}

void push_part(lua_State* L, const MultipartPart& part) {
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, part.name.data(), part.name.size());
  lua_setfield(L, -2, "name");
  if (part.has_filename) {
    lua_pushlstring(L, part.filename.data(), part.filename.size());
    lua_setfield(L, -2, "filename");
  }
  if (!part.content_type.empty()) {
    lua_pushlstring(L, part.content_type.data(), part.content_type.size());
    lua_setfield(L, -2, "content_type");
  }
  lua_createtable(L, 0, static_cast<int>(part.headers.size()));
  for (const auto& [name, value] : part.headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");
}

int read_multipart(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange,
                   int mode) {
  std::unique_ptr<MultipartReader>& multipart = exchange->reading().multipart;
  if (!multipart) {
    const std::string* type = exchange->head().header("content-type");
    std::string boundary = type ? MultipartParser::boundary_from_content_type(*type) : "";
    if (boundary.empty()) return push_failure(L, "the request is not multipart/form-data");
    multipart = std::make_unique<MultipartReader>(boundary);
  }
  MultipartReader& reader = *multipart;
  for (;;) {
    std::string error;
    if (!fill_events(worker, exchange, error)) return -1;
    if (!error.empty()) return push_failure(L, error);
    if (reader.events().empty()) {  // the end of the body
      lua_pushnil(L);
      return 1;
    }
    MultipartReader::Event& event = reader.events().front();
    if (mode == next_part) {
      if (event.kind == MultipartReader::Event::Kind::part_begin) {
        push_part(L, event.part);
        reader.in_part = true;
        reader.events().pop_front();
        return 1;
      }
      reader.events().pop_front();  // the unread rest of the previous part
      continue;
    }
    if (!reader.in_part || event.kind == MultipartReader::Event::Kind::part_begin) {
      lua_pushnil(L);
      return 1;
    }
    if (event.kind == MultipartReader::Event::Kind::part_end) {
      reader.in_part = false;
      reader.events().pop_front();
      lua_pushnil(L);
      return 1;
    }
    lua_pushlstring(L, event.data.data(), event.data.size());
    reader.events().pop_front();
    return 1;
  }
}

int try_read(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, int mode) {
  exchange->send_continue_if_expected();
  switch (mode) {
    case chunk:
      return read_chunk(L, worker, exchange);
    case whole:
      return read_whole(L, worker, exchange);
    case piping:
      return body_pipe::resume(L, worker, exchange);
    default:
      return read_multipart(L, worker, exchange, mode);
  }
}

}  // namespace

int read(lua_State* L, Worker& worker, const std::shared_ptr<Exchange>& exchange, int mode,
         size_t limit, const char* function) {
  if (mode == whole) exchange->reading().limit = limit;
  int count = try_read(L, worker, exchange, mode);
  if (count >= 0) return count;
  Task& task = Task::require(L, function);
  exchange->reading().waiter = task.id();
  exchange->reading().wait_mode = mode;
  return task.suspend(L);
}

}  // namespace depot::body_reader

namespace depot {

void wake_body_reader(Worker& worker, const std::shared_ptr<Exchange>& exchange) {
  BodyReading& reading = exchange->reading();
  if (reading.waiter == 0) return;
  Task* task = worker.find_task(reading.waiter);
  if (task == nullptr || !task->suspended()) return;
  int mode = reading.wait_mode;
  task->resume([&](lua_State* coroutine) {
    int count = body_reader::try_read(coroutine, worker, exchange, mode);
    if (count >= 0) exchange->reading().waiter = 0;
    return count;
  });
}

}  // namespace depot
