// One client connection: incremental HTTP/1.1 parsing (libhttp-parser), keep-alive, pipelining
// (one request at a time, the rest kept until the response is complete), Expect: 100-continue,
// streamed request bodies with backpressure, response framing, and idle timeouts.
//
// Interest is level-triggered: Read while the connection can use more input, only Write while its
// output is blocked, none while a handler works. A client that pipelines but never reads cannot
// grow server memory: no new request is parsed while the unsent output is above its high-water
// mark. It never blocks and never spins on a slow reader.
//
// Before a handler runs, the head is held to the strict syntax and framing rules of
// request_syntax.hpp, and chunk data must end in CRLF: libhttp-parser alone is lenient there. The
// whole head must arrive within header_timeout of its first byte, however slowly it trickles.
#pragma once

#include <http_parser.h>
#include <sys/socket.h>

#include <list>
#include <memory>
#include <optional>
#include <string>

#include "engine/event_source.hpp"
#include "engine/exchange.hpp"
#include "engine/output_queue.hpp"
#include "engine/request_syntax.hpp"
#include "engine/response_sink.hpp"
#include "engine/unique_fd.hpp"
#include "engine/worker.hpp"

namespace depot {

class Connection final : public EventSource, public ResponseSink {
 public:
  Connection(Worker& worker, UniqueFd fd, const sockaddr_storage& peer);
  ~Connection() override;

  void on_ready(Readiness readiness) override;
  void check_timeouts(Clock::time_point now);
  // Stop after the current response: close at once if idle.
  void begin_drain();
  // Closes now; the handler of an unfinished exchange sees the client as gone.
  void close();

  // --- ResponseSink: the current exchange's response ---
  void send_response(Exchange& exchange, int status, const http::Headers& headers,
                     std::string_view body) override;
  void send_file(Exchange& exchange, int status, const http::Headers& headers, UniqueFd fd,
                 off_t offset, uint64_t length) override;
  void start_stream(Exchange& exchange, int status, const http::Headers& headers) override;
  void send_chunk(Exchange& exchange, std::string_view data) override;
  void finish_stream(Exchange& exchange) override;
  void send_continue(Exchange& exchange) override;
  bool output_congested() const override;
  void body_consumed() override;
  void handler_finished(Exchange& exchange) override;
  void abort() override { close(); }

  // Waiting for a next request with nothing received and nothing to send: the kind of connection
  // closed first when the server is at max_connections.
  bool idle() const;
  // The worker's list of idle connections keeps this connection's place in it here.
  std::list<Connection*>::iterator idle_position;

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

  // The points of a request's life, one place each: bytes arrive (read_input), a request starts
  // (start_exchange), its response head is written (write_head), bytes leave (pump), the request
  // is done (maybe_complete_exchange).
  void read_input();
  void parse(const char* data, size_t length);
  // Parses input kept while the connection could not use it, if it can now.
  void parse_pending();
  void on_parse_error(const char* description);
  bool can_parse() const;
  // Checks the CRLF after a chunk's data as far as [from, end) reaches.
  bool check_chunk_delimiter(const char* from, const char* end);
  // A head passed its checks: the exchange starts and goes to the request handler.
  void start_exchange();
  void finish_message();
  // Hands newly arrived body data (or its end) to a handler waiting in req:read() and friends.
  void deliver_body();
  // Ends the current exchange (access log, keep-alive) once its handler and response are done.
  void maybe_complete_exchange();
  // A request that never reached a handler: answer with an error and close.
  void fail_request(int status, std::string_view message);
  // Every error answer of the connection, through error_answer (the service's on_error shape).
  void answer_error(Exchange& exchange, int status, std::string_view message);
  void write_head(Exchange& exchange, int status, const http::Headers& headers,
                  const std::string* content_length);
  // The response is handed to the output; sends what it can unless the parser is running.
  void response_written();
  // Sends queued output, wakes a handler waiting for it to drain, and parses pending input: the
  // one place a pipelined request kept while the connection could not use it is parsed.
  void pump();
  // After the last answer of a connection: half-close, then read and drop what the client still
  // sends until it closes too or kLingerTime passes (see connection.cpp).
  void linger();
  void discard_input();
  void update_interest();
  bool add_header_bytes(size_t length);

  Worker& worker_;
  UniqueFd fd_;
  std::string remote_address_;
  http_parser parser_;
  Pause pause_ = Pause::none;
  bool in_parse_ = false;
  bool body_arrived_ = false;
  std::string pending_;              // received input not parsed yet (the next pipelined request)
  const char* parse_end_ = nullptr;  // end of the input the parser is running over
  int chunk_delimiter_left_ = 0;     // bytes of the CRLF after chunk data not checked yet

  // The request head being parsed.
  RequestHead head_;
  std::string header_field_;
  std::string header_value_;
  bool last_was_value_ = false;
  size_t header_bytes_ = 0;
  std::optional<RequestProblem> parse_problem_;  // why a parser callback stopped the parser
  bool head_started_ = false;
  int requests_this_turn_ = 0;  // pipelined requests started since the last read (or turn)
  bool turn_over_ = false;      // the rest waits for a deferred turn (kRequestsPerTurn)
  bool reading_head_ = true;    // the parser is between messages or in a head
  std::string raw_head_;        // the head's bytes, for request_syntax::check_head
  // The header_timeout clock: runs from the first byte of a request (or from the end of the
  // previous exchange, when the next request was already received).
  bool head_clock_running_ = false;
  Clock::time_point head_since_;
  bool listed_idle_ = false;

  std::shared_ptr<Exchange> current_;
  bool discarding_body_ = false;  // the handler is done; the rest of the body is dropped
  uint64_t response_bytes_start_ = 0;

  OutputQueue output_;
  Interest interest_ = Interest::read;
  bool write_blocked_ = false;
  bool close_after_flush_ = false;
  bool peer_eof_ = false;
  bool lingering_ = false;
  Clock::time_point linger_until_;
  bool closed_ = false;
  bool draining_ = false;
  Clock::time_point last_progress_;
};

}  // namespace depot
