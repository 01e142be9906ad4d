// What a connection hands a parsed request to: the worker's active Runtime (Lua routes), or any
// other implementation (tests drive a Connection with one of their own). It also shapes the
// error answers the connection gives itself (see error_answer.hpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engine/http_util.hpp"

namespace depot {

class Exchange;

class RequestHandler {
 public:
  // Starts handling: the handler answers through the exchange, now or later, and tells the
  // exchange when it is done (Exchange::handler_finished).
  virtual void start_request(const std::shared_ptr<Exchange>& exchange) = 0;
  // The error answer of the service owning the exchange's path (its on_error shape): status,
  // headers and body. Never yields, never fails (a failing shape falls back to the default).
  struct ErrorAnswer {
    int status;
    http::Headers headers;
    std::string body;
  };
  virtual ErrorAnswer render_error(const Exchange& exchange, int status, std::string_view message,
                                   const char* allowed) = 0;

 protected:
  ~RequestHandler() = default;
};

}  // namespace depot
