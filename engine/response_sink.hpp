// What an Exchange needs of the connection that carries it: writing its response out (head and
// framing are the sink's job), the state of that output, and hearing what the handler did.
// Connection implements it. Everything above this line (Exchange, the Lua request API, tasks,
// runtimes) talks to the client only through it, never through Connection itself.
//
// Every call happens on the worker thread that owns the connection, and never blocks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "engine/http_util.hpp"
#include "engine/unique_fd.hpp"

namespace depot {

class Exchange;

class ResponseSink {
 public:
  // A fixed response: head and body at once (the body is dropped when the response has none).
  virtual void send_response(Exchange& exchange, int status, const http::Headers& headers,
                             std::string_view body) = 0;
  // A file response: head with Content-Length, then `length` bytes of `fd` from `offset`.
  virtual void send_file(Exchange& exchange, int status, const http::Headers& headers, UniqueFd fd,
                         off_t offset, uint64_t length) = 0;
  // A streamed (chunked) response: the head now, then chunks, then the end.
  virtual void start_stream(Exchange& exchange, int status, const http::Headers& headers) = 0;
  virtual void send_chunk(Exchange& exchange, std::string_view data) = 0;
  virtual void finish_stream(Exchange& exchange) = 0;
  // "100 Continue" (the client waits for it before sending its body).
  virtual void send_continue(Exchange& exchange) = 0;
  // True while more than the high-water mark of output waits for the client.
  virtual bool output_congested() const = 0;
  // The handler consumed buffered body: the sink may read more.
  virtual void body_consumed() = 0;
  // The handler task of `exchange` has ended (with or without a response).
  virtual void handler_finished(Exchange& exchange) = 0;
  // Drops the client at once: a response whose head is out cannot be turned into another.
  virtual void abort() = 0;

 protected:
  ~ResponseSink() = default;
};

}  // namespace depot
