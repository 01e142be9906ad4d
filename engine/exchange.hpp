// One request and its response. Shared (shared_ptr) by the connection that parses the request and
// the Lua task that handles it, because either can end first: a client may vanish while its
// handler sleeps, and a handler may answer before the body has arrived.
//
// The exchange owns the state of both halves and their transitions: the request body arrives
// (receive_body), ends (complete_body) or fails (fail_body, once); the response is sent whole,
// as a file or as a stream, through the ResponseSink of its connection (response_sink.hpp), which
// is gone (detach) once the client is. Nothing here knows Lua or sockets.
//
// The request body flows through a queue of chunks, bounded by a high-water mark: when the
// handler does not read, the connection stops reading the socket (backpressure to the client).
// Nothing here buffers a whole body unless the handler asked for it with req:body().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/http_util.hpp"
#include "engine/timer_queue.hpp"
#include "engine/unique_fd.hpp"

namespace depot {

class MultipartReader;
namespace body_pipe {
struct State;
}
class ResponseSink;
namespace metrics {
struct RouteSeries;
}

struct RequestHead {
  std::string method;
  std::string target;     // as received: path and query
  std::string path;       // percent-decoded path
  std::string query;      // raw query string, without '?'
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

// What the body reader (body_reader.cpp) keeps between reads; only it touches this.
struct BodyReading {
  uint64_t waiter = 0;               // task waiting for body data (0: none)
  int wait_mode = 0;                 // what it waits for (body_reader::Mode)
  size_t limit = 0;                  // for req:body(): the most it may buffer
  std::string whole;                 // req:body()'s accumulator
  bool consumption_noticed = false;  // a deferred ResponseSink::body_consumed is scheduled
  std::unique_ptr<MultipartReader> multipart;
  std::unique_ptr<body_pipe::State> pipe;  // part:pipe or req:pipe in progress
};

class Exchange {
 public:
  enum class BodyState { receiving, complete, failed };
  enum class ResponseState { none, streaming, done };

  // `sink` may be null: an exchange answered without a client to send to.
  Exchange(RequestHead head, std::string id, std::string remote_address, Clock::time_point started,
           ResponseSink* sink);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // --- the request ---
  const RequestHead& head() const { return head_; }
  const std::string& id() const { return id_; }  // request id, also sent as X-Request-Id
  const std::string& remote_address() const { return remote_address_; }
  Clock::time_point started() const { return started_; }
  // The index of the service that owns the path, -1 if none (set when the request is routed).
  int service() const { return service_; }
  void set_service(int service) { service_ = service; }
  // Its route's metrics (WorkerMetrics::request_started), null until it is routed.
  metrics::RouteSeries* route_series() const { return route_series_; }
  void set_route_series(metrics::RouteSeries* series) { route_series_ = series; }
  // This response is the connection's last: it says "Connection: close".
  void end_keep_alive() { head_.keep_alive = false; }

  // --- the request body, as the connection receives it ---
  // Buffers arrived body bytes; returns how many are buffered now.
  size_t receive_body(std::string_view data);
  // The whole body has arrived; false if it was no longer arriving.
  bool complete_body();
  // The body can no longer arrive whole: a handler reading it gets `reason`. Only the first
  // failure of a body counts.
  void fail_body(std::string reason);
  // Drops what is buffered (the handler is done and the rest is discarded).
  void discard_body();
  BodyState body_state() const { return body_state_; }
  const std::string& body_error() const { return body_error_; }
  uint64_t body_received() const { return body_received_; }
  size_t body_buffered() const { return body_buffered_; }
  // Takes the next buffered body chunk; false when none is buffered right now.
  bool take_chunk(std::string& chunk);
  BodyReading& reading() { return reading_; }
  // Sends "100 Continue" if the client waits for it (before the handler's first read).
  void send_continue_if_expected();
  bool continue_sent() const { return continue_sent_; }
  // The handler consumed buffered body: the connection may read on.
  void body_consumed();

  // --- the response, as the handler sends it ---
  ResponseState response_state() const { return response_state_; }
  bool response_started() const { return response_state_ != ResponseState::none; }
  int status() const { return status_; }
  // Headers set with res:header() before the response starts; sent with it.
  void add_response_header(std::string name, std::string value);
  const http::Headers& response_headers() const { return response_headers_; }
  void respond(int status, const http::Headers& headers, std::string_view body);
  void respond_file(int status, const http::Headers& headers, UniqueFd fd, off_t offset,
                    uint64_t length);
  // `length`: the body's size when known (sent as Content-Length instead of chunked framing).
  void start_stream(int status, const http::Headers& headers,
                    std::optional<uint64_t> length = std::nullopt);
  const std::optional<uint64_t>& stream_length() const { return stream_length_; }
  // What a stream of known length still expects.
  uint64_t stream_remaining() const {
    return stream_length_ ? *stream_length_ - stream_written_ : 0;
  }
  // False when the client is gone (nothing was sent).
  bool write_chunk(std::string_view data);
  void finish_stream();
  // Ends the response by dropping the client (its head is out, so no other answer is possible).
  void abort_response();
  bool output_congested() const;

  // --- the handler task ---
  uint64_t task() const { return task_; }
  void attach_task(uint64_t task) { task_ = task; }
  // The handler task ended: its waits are over, and the connection finishes the exchange.
  void handler_finished();
  // The task waiting for the client to take more output (res:write), 0 for none.
  uint64_t drain_waiter() const { return drain_waiter_; }
  void wait_for_drain(uint64_t task) { drain_waiter_ = task; }
  // Returns the drain waiter and forgets it.
  uint64_t take_drain_waiter();
  // The handler waits on the client itself (its body, its output draining).
  bool handler_waits_on_client() const { return reading_.waiter != 0 || drain_waiter_ != 0; }

  // --- the client ---
  bool client_gone() const { return sink_ == nullptr; }
  // The connection is gone: a body still arriving fails, and nothing more is sent.
  void detach();

 private:
  RequestHead head_;
  std::string id_;
  std::string remote_address_;
  Clock::time_point started_;
  ResponseSink* sink_;
  int service_ = -1;
  metrics::RouteSeries* route_series_ = nullptr;

  std::deque<std::string> body_chunks_;
  size_t body_buffered_ = 0;
  uint64_t body_received_ = 0;
  BodyState body_state_ = BodyState::receiving;
  std::string body_error_;
  bool continue_sent_ = false;
  BodyReading reading_;

  ResponseState response_state_ = ResponseState::none;
  int status_ = 0;
  std::optional<uint64_t> stream_length_;
  uint64_t stream_written_ = 0;
  http::Headers response_headers_;
  uint64_t drain_waiter_ = 0;
  uint64_t task_ = 0;
};

class Worker;

// Worker thread: resume the handler waiting on this exchange's body, or on its output draining,
// if what it waits for has happened (or the client is gone).
void wake_body_reader(Worker& worker, const std::shared_ptr<Exchange>& exchange);
void wake_drain_waiter(Worker& worker, const std::shared_ptr<Exchange>& exchange);

}  // namespace depot
