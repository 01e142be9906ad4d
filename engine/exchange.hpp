// One request and its response. Shared (shared_ptr) by the connection that parses the request and
// the Lua task that handles it, because either can end first: a client may vanish while its
// handler sleeps, and a handler may answer before the body has arrived.
//
// The request body flows through `body_chunks`, bounded by a high-water mark: when the handler
// does not read, the connection stops reading the socket (backpressure to the client). Nothing
// here buffers a whole body unless the handler asked for it with req:body().
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/http_util.hpp"
#include "engine/timer_queue.hpp"

namespace depot {

class Connection;
class MultipartReader;
class Worker;
namespace metrics {
struct RouteSeries;
}

struct RequestHead {
  std::string method;
  std::string target;  // as received: path and query
  std::string path;    // percent-decoded path
  std::string query;   // raw query string, without '?'
  http::Headers headers;  // names lower-cased, in arrival order
  unsigned http_major = 1;
  unsigned http_minor = 1;
  bool keep_alive = true;
  bool expects_continue = false;
  bool chunked = false;
  std::optional<uint64_t> content_length;

  bool has_body() const { return chunked || (content_length && *content_length > 0); }
  // First value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

class Exchange {
 public:
  enum class BodyState { receiving, complete, failed };
  enum class ResponseState { none, streaming, done };

  RequestHead head;
  std::string id;          // request id, also sent as X-Request-Id
  std::string remote_address;
  Clock::time_point started;
  Connection* connection = nullptr;  // null once the connection closed
  int service = -1;                  // index of the service that owns the path, -1 if none
  metrics::RouteSeries* route_series = nullptr;  // set when routed (WorkerMetrics::request_started)

  // Request body.
  std::deque<std::string> body_chunks;
  size_t body_buffered = 0;
  uint64_t body_received = 0;
  BodyState body_state = BodyState::receiving;
  std::string body_error;  // why body_state is failed
  uint64_t body_waiter = 0;  // task waiting for body data (0: none)
  int body_wait_mode = 0;    // what it waits for (body_reader::Mode)
  size_t body_limit = 0;     // for req:body(): the most it may buffer
  std::string whole_body;    // req:body()'s accumulator
  bool consumption_noticed = false;  // a deferred Connection::on_body_consumed is scheduled
  bool continue_sent = false;
  std::unique_ptr<MultipartReader> multipart;

  // Response.
  ResponseState response_state = ResponseState::none;
  int status = 0;
  http::Headers response_headers;  // set with res:header() before the response starts
  uint64_t drain_waiter = 0;       // task waiting for the socket to drain (0: none)
  uint64_t task = 0;               // the handler task (0 when none or finished)

  Exchange();
  ~Exchange();

  bool client_gone() const { return connection == nullptr; }
  bool response_started() const { return response_state != ResponseState::none; }
  // Takes the next buffered body chunk; false when none is buffered right now.
  bool take_chunk(std::string& chunk);
};

// Worker thread: resume the handler waiting on this exchange's body, or on its output draining,
// if what it waits for has happened (or the client is gone).
void wake_body_reader(Worker& worker, const std::shared_ptr<Exchange>& exchange);
void wake_drain_waiter(Worker& worker, const std::shared_ptr<Exchange>& exchange);

}  // namespace depot
