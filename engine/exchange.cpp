// Request/response state shared by a connection and its handler (see exchange.hpp).
#include "engine/exchange.hpp"

#include "engine/body_pipe.hpp"
#include "engine/multipart_reader.hpp"
#include "engine/response_sink.hpp"

namespace depot {

const std::string* RequestHead::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

Exchange::Exchange(RequestHead head, std::string id, std::string remote_address,
                   Clock::time_point started, ResponseSink* sink)
    : head_(std::move(head)),
      id_(std::move(id)),
      remote_address_(std::move(remote_address)),
      started_(started),
      sink_(sink) {
  if (!head_.has_body()) body_state_ = BodyState::complete;
}

Exchange::~Exchange() = default;

// ---------------------------------------------------------------------------------------------
// Request body

size_t Exchange::receive_body(std::string_view data) {
  body_chunks_.emplace_back(data);
  body_buffered_ += data.size();
  body_received_ += data.size();
  return body_buffered_;
}

bool Exchange::complete_body() {
  if (body_state_ != BodyState::receiving) return false;
  body_state_ = BodyState::complete;
  return true;
}

void Exchange::fail_body(std::string reason) {
  if (body_state_ != BodyState::receiving) return;
  body_state_ = BodyState::failed;
  body_error_ = std::move(reason);
}

void Exchange::discard_body() {
  body_chunks_.clear();
  body_buffered_ = 0;
}

bool Exchange::take_chunk(std::string& chunk) {
  if (body_chunks_.empty()) return false;
  chunk = std::move(body_chunks_.front());
  body_chunks_.pop_front();
  body_buffered_ -= chunk.size();
  return true;
}

void Exchange::send_continue_if_expected() {
  if (!head_.expects_continue || continue_sent_ || response_started() || sink_ == nullptr) return;
  continue_sent_ = true;
  sink_->send_continue(*this);
}

void Exchange::body_consumed() {
  if (sink_) sink_->body_consumed();
}

// ---------------------------------------------------------------------------------------------
// Response

void Exchange::add_response_header(std::string name, std::string value) {
  response_headers_.emplace_back(std::move(name), std::move(value));
}

void Exchange::respond(int status, const http::Headers& headers, std::string_view body) {
  status_ = status;
  response_state_ = ResponseState::done;
  if (sink_) sink_->send_response(*this, status, headers, body);
}

void Exchange::respond_file(int status, const http::Headers& headers, UniqueFd fd, off_t offset,
                            uint64_t length) {
  status_ = status;
  response_state_ = ResponseState::done;
  if (sink_) sink_->send_file(*this, status, headers, std::move(fd), offset, length);
}

void Exchange::start_stream(int status, const http::Headers& headers,
                            std::optional<uint64_t> length) {
  status_ = status;
  response_state_ = ResponseState::streaming;
  stream_length_ = length;
  if (sink_) sink_->start_stream(*this, status, headers);
}

bool Exchange::write_chunk(std::string_view data) {
  if (sink_ == nullptr) return false;
  stream_written_ += data.size();
  sink_->send_chunk(*this, data);
  return sink_ != nullptr;
}

void Exchange::finish_stream() {
  response_state_ = ResponseState::done;
  if (sink_) sink_->finish_stream(*this);
}

void Exchange::abort_response() {
  response_state_ = ResponseState::done;
  if (sink_) sink_->abort();
}

bool Exchange::output_congested() const {
  return sink_ != nullptr && sink_->output_congested();
}

// ---------------------------------------------------------------------------------------------
// Handler and client

void Exchange::handler_finished() {
  task_ = 0;
  reading_.waiter = 0;
  drain_waiter_ = 0;
  if (sink_) sink_->handler_finished(*this);
}

uint64_t Exchange::take_drain_waiter() {
  uint64_t waiter = drain_waiter_;
  drain_waiter_ = 0;
  return waiter;
}

void Exchange::detach() {
  fail_body("client closed the connection");
  sink_ = nullptr;
}

}  // namespace depot
