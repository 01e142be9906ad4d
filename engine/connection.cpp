// HTTP/1.1 connection handling on a worker thread (see connection.hpp).
#include "engine/connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <random>

#include "engine/access_log.hpp"
#include "engine/error_answer.hpp"
#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/request_handler.hpp"
#include "engine/server_core.hpp"

namespace depot {
namespace {
constexpr size_t kBodyHighWater = 64 * 1024;  // stop reading the socket above this (one read)
constexpr size_t kOutputHighWater = 256 * 1024;
constexpr auto kLingerTime =
    std::chrono::seconds(2);  // nginx's lingering_time is 30 s, its timeout 5 s
// Every file response holds a descriptor until it is sent: a client pipelining downloads it never
// reads must not make the connection hold one per request.
constexpr size_t kMaxQueuedSegments = 64;
constexpr uint64_t kDiscardableBody = 64 * 1024;  // unread body we drop to keep the connection
// Pipelined requests started per connection before the others get a turn. A finished request's
// task and exchange are freed only after the worker's event batch, so one read of 64 KiB of
// small requests answered in one go held ~2 KiB per request, times every connection in the batch.
constexpr int kRequestsPerTurn = 32;

std::string format_address(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = "";
  if (peer.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, text, sizeof text);
  } else if (peer.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr, text, sizeof text);
  }
  return text;
}

void append_hex(std::string& out, uint64_t value) {
  char digits[16];
  int count = 0;
  do {
    digits[count++] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  while (count > 0) out.push_back(digits[--count]);
}

// Request ids: a random per-process prefix and a per-thread counter; unique, cheap, not secret.
// Short enough to stay in std::string's inline buffer for the first million requests.
std::string next_request_id(size_t worker) {
  static const uint32_t prefix = std::random_device{}() & 0xffffff;
  thread_local uint64_t counter = 0;
  std::string id;
  append_hex(id, prefix);
  id.push_back('-');
  append_hex(id, worker);
  id.push_back('-');
  append_hex(id, ++counter);
  return id;
}

// A client-supplied X-Request-Id is kept when it is short and plain, so traces join up.
bool acceptable_request_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool is_engine_header(std::string_view name) {
  return http::iequals(name, "content-length") || http::iequals(name, "transfer-encoding") ||
         http::iequals(name, "connection") || http::iequals(name, "date");
}

// Splits a request target into the decoded path and the raw query.
void split_target(RequestHead& head) {
  size_t question = head.target.find('?');
  head.path = http::percent_decode(std::string_view(head.target).substr(0, question));
  if (question != std::string::npos) head.query = head.target.substr(question + 1);
}
}  // namespace

const http_parser_settings Connection::kParserSettings = [] {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_begin = &Connection::on_message_begin;
  settings.on_url = &Connection::on_url;
  settings.on_header_field = &Connection::on_header_field;
  settings.on_header_value = &Connection::on_header_value;
  settings.on_headers_complete = &Connection::on_headers_complete;
  settings.on_body = &Connection::on_body;
  settings.on_message_complete = &Connection::on_message_complete;
  return settings;
}();

Connection::Connection(Worker& worker, UniqueFd fd, const sockaddr_storage& peer)
    : worker_(worker),
      fd_(std::move(fd)),
      remote_address_(format_address(peer)),
      last_progress_(worker.now()) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  worker_.watch(fd_.get(), this, Interest::read);
  listed_idle_ = true;  // waiting for its first request
  worker_.add_idle(this);
}

Connection::~Connection() {
  if (!closed_) {
    if (current_) current_->detach();
  }
}

// ---------------------------------------------------------------------------------------------
// Events

void Connection::on_ready(Readiness readiness) {
  if (closed_) return;
  if (readiness.failed) {
    close();
    return;
  }
  if (write_blocked_) {
    pump();
    return;
  }
  if (lingering_) {
    discard_input();
    return;
  }
  if (readiness.readable) read_input();
  if (!closed_) pump();
}

void Connection::read_input() {
  if (!can_parse() || !pending_.empty()) return;  // level-triggered: we will be asked again
  ssize_t n = ::recv(fd_.get(), worker_.read_buffer(), worker_.read_buffer_size(), 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) close();
    return;
  }
  last_progress_ = worker_.now();
  worker_.metrics().received(static_cast<uint64_t>(n));
  if (n == 0) {
    peer_eof_ = true;
    // A client may half-close after sending its request; it still gets the response.
    bool waiting_for_response = current_ && current_->body_state() == Exchange::BodyState::complete;
    if (!waiting_for_response) {
      close();
    }
    return;
  }
  if (!current_ && !head_clock_running_) {
    head_clock_running_ = true;
    head_since_ = last_progress_;
  }
  requests_this_turn_ = 0;
  parse(worker_.read_buffer(), static_cast<size_t>(n));
}

bool Connection::can_parse() const {
  if (closed_ || close_after_flush_ || turn_over_) return false;
  if (!current_) return !output_congested() && output_.segment_count() <= kMaxQueuedSegments;
  if (current_->body_state() != Exchange::BodyState::receiving) return false;
  return discarding_body_ || current_->body_buffered() < kBodyHighWater;
}

void Connection::parse(const char* data, size_t length) {
  in_parse_ = true;
  while (length > 0 && can_parse()) {
    if (!check_chunk_delimiter(data, data + length)) {
      on_parse_error("");
      length = 0;
      break;
    }
    parse_end_ = data + length;
    size_t consumed = http_parser_execute(&parser_, &kParserSettings, data, length);
    http_errno error = HTTP_PARSER_ERRNO(&parser_);
    if (reading_head_) {
      // Paused at the end of the head, the parser has not consumed the head's last LF yet.
      size_t head_bytes = consumed + (error == HPE_PAUSED && pause_ == Pause::headers ? 1 : 0);
      const char* head = data;
      if (raw_head_.empty()) {  // empty lines between requests are not part of a head
        while (head_bytes > 0 && (*head == '\r' || *head == '\n')) ++head, --head_bytes;
      }
      raw_head_.append(head, head_bytes);
    }
    data += consumed;
    length -= consumed;
    if (body_arrived_) deliver_body();
    if (error == HPE_PAUSED) {
      http_parser_pause(&parser_, 0);
      Pause reason = pause_;
      pause_ = Pause::none;
      if (reason == Pause::headers) start_exchange();
      if (reason == Pause::message) finish_message();
      continue;
    }
    if (error != HPE_OK) {
      on_parse_error(http_errno_description(error));
      length = 0;
      break;
    }
    if (parser_.upgrade) {  // the answer to the current request is the last on this connection
      if (!current_) fail_request(400, "protocol upgrades are not supported");
      close_after_flush_ = true;
      length = 0;
      break;
    }
  }
  in_parse_ = false;
  if (closed_) return;
  if (length > 0 && !close_after_flush_) {
    pending_.assign(data, length);  // parse_pending() took pending_ before parsing it
  } else {
    pending_.clear();
  }
  if (!current_ && !head_clock_running_ &&
      (!pending_.empty() || head_started_ || !raw_head_.empty())) {
    head_clock_running_ = true;
    head_since_ = worker_.now();
  }
}

void Connection::parse_pending() {
  if (pending_.empty() || !can_parse()) return;
  std::string input;
  input.swap(pending_);
  parse(input.data(), input.size());
}

void Connection::on_parse_error(const char* description) {
  std::optional<RequestProblem> problem = std::move(parse_problem_);
  parse_problem_.reset();
  if (current_ && current_->body_state() == Exchange::BodyState::receiving) {
    current_->fail_body(std::string("malformed request body: ") +
                        std::string(problem ? problem->message : description));
    close_after_flush_ = true;
    deliver_body();
  } else {
    fail_request(problem ? problem->status : 400, problem ? problem->message : description);
  }
}

bool Connection::check_chunk_delimiter(const char* from, const char* end) {
  for (; chunk_delimiter_left_ > 0 && from < end; ++from, --chunk_delimiter_left_) {
    if (*from != (chunk_delimiter_left_ == 2 ? '\r' : '\n')) {
      chunk_delimiter_left_ = 0;
      parse_problem_ = RequestProblem{400, "chunk data not followed by CRLF"};
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Parser callbacks (they only record; the work happens in parse() once the parser paused)

int Connection::on_message_begin(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->head_ = RequestHead{};
  self->head_.headers.reserve(16);
  self->header_field_.clear();
  self->header_value_.clear();
  self->last_was_value_ = false;
  self->header_bytes_ = 0;
  self->parse_problem_.reset();
  self->head_started_ = true;
  return 0;
}

bool Connection::add_header_bytes(size_t length) {
  header_bytes_ += length;
  if (header_bytes_ > worker_.core().options().limits.max_header_bytes) {
    parse_problem_ = RequestProblem{431, "request header fields too large"};
    return false;
  }
  return true;
}

int Connection::on_url(http_parser* parser, const char* data, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  if (!self->add_header_bytes(length)) return 1;
  self->head_.target.append(data, length);
  return 0;
}

int Connection::on_header_field(http_parser* parser, const char* data, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  if (!self->add_header_bytes(length)) return 1;
  if (self->last_was_value_) {
    if (self->head_.headers.size() >= self->worker_.core().options().limits.max_header_count) {
      self->parse_problem_ = RequestProblem{431, "request header fields too large"};
      return 1;
    }
    self->head_.headers.emplace_back(http::lowercase(self->header_field_),
                                     std::move(self->header_value_));
    self->header_field_.clear();
    self->header_value_.clear();
    self->last_was_value_ = false;
  }
  self->header_field_.append(data, length);
  return 0;
}

int Connection::on_header_value(http_parser* parser, const char* data, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  if (!self->add_header_bytes(length)) return 1;
  self->header_value_.append(data, length);
  self->last_was_value_ = true;
  return 0;
}

int Connection::on_headers_complete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  RequestHead& head = self->head_;
  if (!self->header_field_.empty()) {
    if (head.headers.size() >= self->worker_.core().options().limits.max_header_count) {
      self->parse_problem_ = RequestProblem{431, "request header fields too large"};
      return -1;
    }
    head.headers.emplace_back(http::lowercase(self->header_field_), std::move(self->header_value_));
  }
  head.method = http_method_str(static_cast<http_method>(parser->method));
  head.http_major = parser->http_major;
  head.http_minor = parser->http_minor;
  // An Upgrade we do not speak is ignored (RFC 9110 §7.8), but libhttp-parser stops parsing
  // after such a request, so its connection closes after the answer.
  head.keep_alive = http_should_keep_alive(parser) != 0 && !parser->upgrade;
  head.chunked = (parser->flags & F_CHUNKED) != 0;
  if (!head.chunked && parser->content_length != ULLONG_MAX)
    head.content_length = parser->content_length;
  split_target(head);
  self->pause_ = Pause::headers;
  http_parser_pause(parser, 1);
  return 0;
}

int Connection::on_body(http_parser* parser, const char* data, size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  // The last piece of a chunk's data: the lenient parser takes the next two bytes as the CRLF
  // whatever they are, so they are checked here (and in parse(), if the input ends first).
  if ((parser->flags & F_CHUNKED) != 0 && parser->content_length == 0) {
    self->chunk_delimiter_left_ = 2;
    if (!self->check_chunk_delimiter(data + length, self->parse_end_)) return 1;
  }
  Exchange* exchange = self->current_.get();
  if (exchange == nullptr || self->discarding_body_ ||
      exchange->body_state() != Exchange::BodyState::receiving) {
    return 0;
  }
  self->body_arrived_ = true;
  if (exchange->receive_body(std::string_view(data, length)) >= kBodyHighWater) {
    self->pause_ = Pause::body_full;
    http_parser_pause(parser, 1);
  }
  return 0;
}

int Connection::on_message_complete(http_parser* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->pause_ = Pause::message;
  http_parser_pause(parser, 1);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Exchanges

void Connection::start_exchange() {
  head_started_ = false;
  reading_head_ = false;
  std::optional<RequestProblem> problem = request_syntax::check_head(raw_head_);
  raw_head_.clear();
  if (!problem) problem = request_syntax::check_framing(head_);
  if (problem) {
    fail_request(problem->status, problem->message);
    return;
  }
  head_clock_running_ = false;
  if (++requests_this_turn_ >= kRequestsPerTurn && !turn_over_) {
    turn_over_ = true;
    // Deferred work runs after the batch's events, and after the frees deferred before it.
    worker_.defer([this] {
      turn_over_ = false;
      requests_this_turn_ = 0;
      pump();
    });
  }
  if (const std::string* expect = head_.header("expect")) {
    if (!http::iequals(*expect, "100-continue")) {
      fail_request(417, "unsupported Expect header");
      return;
    }
    head_.expects_continue = head_.http_minor >= 1 && head_.has_body();
  }
  const std::string* client_id = head_.header("x-request-id");
  std::string id = client_id && acceptable_request_id(*client_id)
                       ? *client_id
                       : next_request_id(worker_.index());
  auto exchange = std::make_shared<Exchange>(std::move(head_), std::move(id), remote_address_,
                                             worker_.now(), this);
  head_ = RequestHead{};
  if (draining_) exchange->end_keep_alive();
  current_ = exchange;
  discarding_body_ = false;
  response_bytes_start_ = output_.bytes_sent() + output_.buffered_bytes();

  RequestHandler* handler = worker_.request_handler();
  if (handler == nullptr) {
    answer_error(*exchange, 503, "no scripts are loaded");
    exchange->handler_finished();
    return;
  }
  handler->start_request(exchange);
}

void Connection::finish_message() {
  reading_head_ = true;
  if (!current_) return;
  if (current_->complete_body()) body_arrived_ = true;
  deliver_body();
  maybe_complete_exchange();
}

void Connection::deliver_body() {
  body_arrived_ = false;
  if (current_ && current_->reading().waiter) wake_body_reader(worker_, current_);
}

void Connection::body_consumed() {
  if (in_parse_ || closed_ || !current_) return;
  pump();
}

void Connection::handler_finished(Exchange& exchange) {
  if (closed_ || current_.get() != &exchange) return;
  if (exchange.response_state() == Exchange::ResponseState::none) {
    answer_error(exchange, 500, "the handler finished without a response");
  } else if (exchange.response_state() == Exchange::ResponseState::streaming) {
    exchange.finish_stream();
  }
  if (exchange.body_state() == Exchange::BodyState::receiving) {
    const RequestHead& head = exchange.head();
    bool small_rest = head.content_length &&
                      *head.content_length - exchange.body_received() <= kDiscardableBody &&
                      !(head.expects_continue && !exchange.continue_sent());
    if (small_rest) {
      discarding_body_ = true;
      exchange.discard_body();
    } else {
      close_after_flush_ = true;  // reading a large unwanted body is worse than reconnecting
    }
  }
  maybe_complete_exchange();
  if (!in_parse_) pump();
}

void Connection::maybe_complete_exchange() {
  if (!current_ || current_->task() != 0 ||
      current_->response_state() != Exchange::ResponseState::done) {
    return;
  }
  if (current_->body_state() == Exchange::BodyState::receiving && !close_after_flush_) return;
  Exchange& exchange = *current_;
  Clock::time_point finished = Clock::now();
  access_log::write(
      exchange, output_.bytes_sent() + output_.buffered_bytes() - response_bytes_start_, finished);
  worker_.metrics().request_finished(exchange, finished);
  if (!exchange.head().keep_alive || peer_eof_) close_after_flush_ = true;
  exchange.detach();
  current_.reset();
  discarding_body_ = false;
  // A next request already received is on the header_timeout clock from now (parse() starts it
  // for one that is in the input it is parsing).
  head_clock_running_ = !pending_.empty();
  head_since_ = worker_.now();
  // The next pipelined request is parsed by the parse loop, if it runs, or else by pump().
}

void Connection::fail_request(int status, std::string_view message) {
  // A request that never reached a handler: answer and close (the stream may be out of sync).
  close_after_flush_ = true;
  std::shared_ptr<Exchange> exchange = current_;
  if (!exchange) {
    RequestHead head = std::move(head_);
    head_ = RequestHead{};
    if (head.method.empty()) head.method = "-";
    // A head cut short (a timeout, a line too long) still has the service its path names.
    if (head.path.empty()) split_target(head);
    exchange = std::make_shared<Exchange>(std::move(head), next_request_id(worker_.index()),
                                          remote_address_, worker_.now(), this);
  }
  exchange->end_keep_alive();
  answer_error(*exchange, status, message);
  if (!current_) {
    Clock::time_point finished = Clock::now();
    access_log::write(*exchange, output_.buffered_bytes(), finished);
    worker_.metrics().request_finished(*exchange, finished);
  }
  pending_.clear();
}

void Connection::answer_error(Exchange& exchange, int status, std::string_view message) {
  error_answer::send(worker_.request_handler(), exchange, status, message);
}

// ---------------------------------------------------------------------------------------------
// Responses

void Connection::write_head(Exchange& exchange, int status, const http::Headers& headers,
                            const std::string* content_length) {
  if (draining_ || close_after_flush_) exchange.end_keep_alive();
  std::string head;
  head.reserve(512);
  head.append(exchange.head().http_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char digits[4] = {static_cast<char>('0' + status / 100 % 10),
                    static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10),
                    ' '};
  head.append(digits, 4);
  head.append(http::reason_phrase(status));
  head.append("\r\nDate: ");
  head.append(http::date_header(time(nullptr)));
  auto add = [&head](std::string_view name, std::string_view value) {
    head.append("\r\n");
    head.append(name);
    head.append(": ");
    head.append(value);
  };
  // The Lua calls refuse invalid headers already; this is the last line of defence for any other
  // producer: a header that would split the response is never written.
  auto add_script_header = [&](const std::string& name, const std::string& value) {
    if (is_engine_header(name)) return;
    if (!http::valid_field_name(name) || !http::valid_field_value(value)) {
      log::warn("invalid response header dropped", {{"request_id", exchange.id()}, {"name", name}});
      return;
    }
    add(name, value);
  };
  for (const auto& [name, value] : exchange.response_headers()) add_script_header(name, value);
  for (const auto& [name, value] : headers) add_script_header(name, value);
  add("X-Request-Id", exchange.id());
  if (http::status_has_content(status)) {
    if (content_length == nullptr) {
      add("Transfer-Encoding", "chunked");
    } else {
      add("Content-Length", *content_length);
    }
  }
  if (!exchange.head().keep_alive) {
    add("Connection", "close");
  } else if (exchange.head().http_minor == 0) {
    add("Connection", "keep-alive");
  }
  head.append("\r\n\r\n");
  output_.append(std::move(head));
}

void Connection::response_written() {
  if (!in_parse_) pump();
}

void Connection::send_response(Exchange& exchange, int status, const http::Headers& headers,
                               std::string_view body) {
  std::string length = std::to_string(body.size());
  write_head(exchange, status, headers, &length);
  if (http::response_has_content(exchange.head().method, status)) output_.append(body);
  response_written();
}

void Connection::start_stream(Exchange& exchange, int status, const http::Headers& headers) {
  if (!exchange.stream_length()) return write_head(exchange, status, headers, nullptr);
  std::string length = std::to_string(*exchange.stream_length());
  write_head(exchange, status, headers, &length);
}

void Connection::send_chunk(Exchange& exchange, std::string_view data) {
  if (data.empty() || !http::response_has_content(exchange.head().method, exchange.status())) {
    return;
  }
  if (exchange.stream_length()) {  // Content-Length framing: the bytes as they are
    output_.append(data);
    response_written();
    return;
  }
  char size_line[24];
  int n = snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  output_.append(std::string_view(size_line, static_cast<size_t>(n)));
  output_.append(data);
  output_.append(std::string_view("\r\n", 2));
  response_written();
}

void Connection::finish_stream(Exchange& exchange) {
  bool has_content = http::response_has_content(exchange.head().method, exchange.status());
  // Fewer bytes than the Content-Length said: only closing tells the client the body is cut.
  if (has_content && exchange.stream_remaining() > 0) return close();
  if (has_content && !exchange.stream_length()) {
    output_.append(std::string_view("0\r\n\r\n", 5));
  }
  response_written();
}

void Connection::send_file(Exchange& exchange, int status, const http::Headers& headers,
                           UniqueFd fd, off_t offset, uint64_t length) {
  std::string text = std::to_string(length);
  write_head(exchange, status, headers, &text);
  if (http::response_has_content(exchange.head().method, status)) {
    output_.append_file(std::move(fd), offset, length);
  }
  response_written();
}

void Connection::send_continue(Exchange&) {
  output_.append(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
  response_written();
}

bool Connection::output_congested() const {
  return output_.buffered_bytes() > kOutputHighWater;
}

// ---------------------------------------------------------------------------------------------
// Output, interest, lifecycle

void Connection::pump() {
  if (closed_) return;
  if (!output_.empty()) {
    uint64_t before = output_.bytes_sent();
    OutputQueue::FlushResult result = output_.flush(fd_.get());
    if (output_.bytes_sent() != before) last_progress_ = worker_.now();
    worker_.metrics().sent(output_.bytes_sent() - before);
    if (result == OutputQueue::FlushResult::failed) {
      close();
      return;
    }
    write_blocked_ = result == OutputQueue::FlushResult::blocked;
  } else {
    write_blocked_ = false;
  }
  if (current_ && current_->drain_waiter() && !output_congested()) {
    wake_drain_waiter(worker_, current_);
    if (closed_) return;
  }
  if (lingering_) return;
  if (output_.empty() && close_after_flush_ && !current_) {
    linger();
    return;
  }
  if (output_.empty() && close_after_flush_ && current_ &&
      current_->response_state() == Exchange::ResponseState::done && current_->task() == 0) {
    maybe_complete_exchange();
    linger();
    return;
  }
  if (!write_blocked_ && !pending_.empty() && can_parse()) {
    parse_pending();
    if (closed_) return;
    if (!output_.empty()) {
      pump();
      return;
    }
  }
  update_interest();
}

// Closing a socket with unread input makes the kernel send RST, and an RST discards what the
// client had not read yet: a client still sending a body we refused (413, 400) would see
// "connection reset" instead of our answer. So the last answer is followed by a half-close,
// and whatever still arrives is dropped until the client closes too (nginx's lingering_close).
void Connection::linger() {
  if (peer_eof_ || closed_) {
    close();
    return;
  }
  lingering_ = true;
  linger_until_ = worker_.now() + kLingerTime;
  ::shutdown(fd_.get(), SHUT_WR);
  if (listed_idle_) {
    listed_idle_ = false;
    worker_.remove_idle(this);
  }
  if (interest_ != Interest::read) {
    interest_ = Interest::read;
    worker_.rewatch(fd_.get(), this, interest_);
  }
}

void Connection::discard_input() {
  ssize_t n = ::recv(fd_.get(), worker_.read_buffer(), worker_.read_buffer_size(), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close();
}

void Connection::update_interest() {
  if (closed_ || lingering_) return;
  if (idle() != listed_idle_) {
    listed_idle_ = !listed_idle_;
    if (listed_idle_) {
      worker_.add_idle(this);
    } else {
      worker_.remove_idle(this);
    }
  }
  Interest wanted = Interest::none;
  if (write_blocked_) {
    wanted = Interest::write;
  } else if (!peer_eof_ && pending_.empty() && can_parse()) {
    wanted = Interest::read;
  }
  if (wanted != interest_) {
    interest_ = wanted;
    worker_.rewatch(fd_.get(), this, wanted);
  }
}

bool Connection::idle() const {
  return !closed_ && !current_ && !head_clock_running_ && output_.empty() && !close_after_flush_;
}

void Connection::check_timeouts(Clock::time_point now) {
  if (closed_) return;
  if (lingering_) {
    if (now > linger_until_) close();
    return;
  }
  const Limits& limits = worker_.core().options().limits;
  auto idle = now - last_progress_;
  if (write_blocked_) {
    if (idle > limits.send_timeout) close();
    return;
  }
  if (!current_) {
    // Counted from the head's first byte, not from the last one: a client trickling a byte at a
    // time must not hold the connection for longer (nginx's client_header_timeout).
    if (head_clock_running_) {
      if (now - head_since_ > limits.header_timeout) {
        fail_request(408, "timed out reading the request head");
        pump();
      }
    } else if (output_.empty() && idle > limits.keepalive_timeout) {
      close();
    }
    return;
  }
  if (current_->body_state() == Exchange::BodyState::receiving && interest_ == Interest::read &&
      idle > limits.body_timeout) {
    std::shared_ptr<Exchange> exchange = current_;
    exchange->fail_body("timed out reading the request body");
    close_after_flush_ = true;
    exchange->end_keep_alive();
    answer_error(*exchange, 408, exchange->body_error());
    if (exchange->reading().waiter) wake_body_reader(worker_, exchange);
    pump();
  }
}

void Connection::begin_drain() {
  draining_ = true;
  if (!current_ && output_.empty() && !head_started_) {
    close();
    return;
  }
  if (!current_) close_after_flush_ = true;
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  // Out of epoll first: if the process forked (io.popen, os.execute), a child holding a copy of
  // the socket would keep the registration alive, and its events would reach a freed Connection.
  try {
    worker_.unwatch(fd_.get());
  } catch (const std::exception&) {
  }
  fd_.reset();
  output_.clear();
  if (listed_idle_) {
    listed_idle_ = false;
    worker_.remove_idle(this);
  }
  if (current_) {
    std::shared_ptr<Exchange> exchange = std::move(current_);
    exchange->detach();
    if (exchange->task() != 0) access_log::write(*exchange, 0, Clock::now(), "client closed");
    worker_.metrics().request_finished(*exchange, Clock::now());
    wake_body_reader(worker_, exchange);
    wake_drain_waiter(worker_, exchange);
  }
  worker_.retire_connection(this);
}

}  // namespace depot
