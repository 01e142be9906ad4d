// Error answers, shaped once (see error_answer.hpp).
#include "engine/error_answer.hpp"

#include <nlohmann/json.hpp>

#include "engine/exchange.hpp"
#include "engine/request_handler.hpp"

namespace depot::error_answer {

std::string default_body(int status, std::string_view message, const std::string& request_id) {
  nlohmann::json body = {{"error", message}, {"status", status}};
  if (!request_id.empty()) body["request_id"] = request_id;
  return body.dump();
}

void send(RequestHandler* handler, Exchange& exchange, int status, std::string_view message,
          const char* allowed) {
  if (exchange.response_started() || exchange.client_gone()) return;
  if (handler != nullptr) {
    RequestHandler::ErrorAnswer answer = handler->render_error(exchange, status, message, allowed);
    exchange.respond(answer.status, answer.headers, answer.body);
    return;
  }
  http::Headers headers = {{"content-type", "application/json"}};
  if (allowed != nullptr) headers.emplace_back("Allow", allowed);
  exchange.respond(status, headers, default_body(status, message, exchange.id()));
}

}  // namespace depot::error_answer
