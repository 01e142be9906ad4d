// One client connection: incremental HTTP/1.1 parsing (libhttp-parser), keep-alive, pipelining
// (one request at a time, the rest kept until the response is complete), Expect: 100-continue,
// streamed request bodies with backpressure, response framing, and idle timeouts.
//
// Interest is level-triggered: Read while the connection can use more input, only Write while its
// output is blocked (a client that pipelines but never reads cannot grow server memory), none
// while a handler works. It never blocks and never spins on a slow reader.
#pragma once

#include <http_parser.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "engine/event_source.hpp"
#include "engine/exchange.hpp"
#include "engine/output_queue.hpp"
#include "engine/unique_fd.hpp"
#include "engine/worker.hpp"

namespace depot {

class Connection final : public EventSource {
 public:
  Connection(Worker& worker, UniqueFd fd, const sockaddr_storage& peer);
  ~Connection() override;

  void on_ready(Readiness readiness) override;
  void check_timeouts(Clock::time_point now);
  // Stop after the current response: close at once if idle.
  void begin_drain();
  // Closes now; the handler of an unfinished exchange sees the client as gone.
  void close();

  // --- used by the Lua request API, for the connection's current exchange ---
  // Sends "100 Continue" if the client waits for it (called before the handler's first read).
  void send_continue_if_expected(Exchange& exchange);
  // The handler consumed buffered body: parse and read more if the buffer has room again.
  void on_body_consumed();
  // A fixed response: head and body at once (the body is dropped for HEAD).
  void respond(Exchange& exchange, int status, const http::Headers& headers, std::string_view body);
  // A streamed (chunked) response: head now, then chunks, then finish.
  void start_stream(Exchange& exchange, int status, const http::Headers& headers);
  void write_chunk(Exchange& exchange, std::string_view data);
  void finish_stream(Exchange& exchange);
  // A file response: head with Content-Length, then `length` bytes of `fd` from `offset` via
  // sendfile.
  void respond_file(Exchange& exchange, int status, const http::Headers& headers, UniqueFd fd,
                    off_t offset, uint64_t length);
  // True while more than the high-water mark of output waits for the client.
  bool output_congested() const;
  // The handler task of `exchange` has ended.
  void on_task_finished(Exchange& exchange);

 private:
  static int on_message_begin(http_parser* parser);
  static int on_url(http_parser* parser, const char* data, size_t length);
  static int on_header_field(http_parser* parser, const char* data, size_t length);
  static int on_header_value(http_parser* parser, const char* data, size_t length);
  static int on_headers_complete(http_parser* parser);
  static int on_body(http_parser* parser, const char* data, size_t length);
  static int on_message_complete(http_parser* parser);
  static const http_parser_settings kParserSettings;

  enum class Pause { none, headers, body_full, message };

  void read_input();
  void parse(const char* data, size_t length);
  bool can_parse() const;
  void start_exchange();
  void finish_message();
  // Hands newly arrived body data (or its end) to a handler waiting in req:read() and friends.
  void deliver_body();
  void maybe_complete_exchange();
  void fail_request(int status, std::string_view message);
  void write_head(Exchange& exchange, int status, const http::Headers& headers,
                  const std::string* content_length);
  void pump();
  void update_interest();
  bool add_header_bytes(size_t length);

  Worker& worker_;
  UniqueFd fd_;
  std::string remote_address_;
  http_parser parser_;
  Pause pause_ = Pause::none;
  bool in_parse_ = false;
  bool body_arrived_ = false;
  std::string pending_;  // received input not parsed yet (the next pipelined request)

  // The request head being parsed.
  RequestHead head_;
  std::string header_field_;
  std::string header_value_;
  bool last_was_value_ = false;
  size_t header_bytes_ = 0;
  int head_error_ = 0;  // 431 when the head is over the limits
  bool head_started_ = false;

  std::shared_ptr<Exchange> current_;
  bool discarding_body_ = false;  // the handler is done; the rest of the body is dropped
  uint64_t response_bytes_start_ = 0;

  OutputQueue output_;
  Interest interest_ = Interest::read;
  bool write_blocked_ = false;
  bool close_after_flush_ = false;
  bool peer_eof_ = false;
  bool closed_ = false;
  bool draining_ = false;
  Clock::time_point last_progress_;
};

}  // namespace depot
