// Fuzz target: raw client bytes through a real connection of an embedded server (see targets.hpp).
#include <http_parser.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "tests/fuzz/targets.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

namespace depot::fuzz {
namespace {

// Routes that take the body in each way the request API offers, and answer in each way a
// response can be framed (Content-Length, chunked, none).
const char* const kRoutes = R"LUA(
local service = ...
service:get("/", function(req)
  return { path = req.path, target = req.target, query = req.query, headers = req.headers }
end)
service:get("/items/:id", function(req, res)
  res:header("X-Echo", req:header("x-echo") or "-")
  return req.params.id
end)
service:get("/stream/*rest", function(req, res)
  res:start(200)
  res:write(req.params.rest)
  res:write(req.target)
end)
service:post("/echo", function(req) return 200, req:body(4096) end)
service:put("/read", function(req)
  local total = 0
  while true do
    local chunk, err = req:read()
    if chunk == nil then
      if err then return 400, err end
      return tostring(total)
    end
    total = total + #chunk
  end
end)
service:post("/form", function(req)
  local parts = {}
  for part in req:parts() do parts[#parts + 1] = tostring(part.name) .. "=" .. #part:text() end
  return table.concat(parts, "&")
end)
service:post("/json", function(req) return { value = req:json(4096) } end)
service:delete("/items/:id", function() end)
)LUA";

// How long the server may take to answer and close after the client's end of input. Every input
// ends in a half-close, so no request can legitimately keep the connection open.
constexpr auto kCloseDeadline = std::chrono::seconds(10);

// What the server sent, and whether the connection ended in a reset: a server that closes with
// unread input resets the connection, which may cut off answers it had already sent.
struct Received {
  std::string bytes;
  bool reset = false;
};

Received read_until_closed(int fd, std::string_view input) {
  Received received;
  auto deadline = std::chrono::steady_clock::now() + kCloseDeadline;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd poll_fd{fd, POLLIN, 0};
    int ready = left.count() > 0 ? ::poll(&poll_fd, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      throw FuzzFinding("http: the connection was still open " +
                        std::to_string(kCloseDeadline.count()) +
                        " s after the client's end of input; received so far:\n" + received.bytes +
                        "\ninput:\n" + std::string(input));
    }
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      received.bytes.append(chunk, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      received.reset = n < 0;
      return received;
    }
  }
}

int count_message(http_parser* parser) {
  ++*static_cast<int*>(parser->data);
  return 0;
}

// The server's output must be well-formed responses, the last one cut short only by a reset.
void check_responses(const Received& received, std::string_view input) {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_complete = count_message;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  int responses = 0;
  parser.data = &responses;
  size_t used =
      http_parser_execute(&parser, &settings, received.bytes.data(), received.bytes.size());
  if (HTTP_PARSER_ERRNO(&parser) == HPE_OK && !received.reset)
    http_parser_execute(&parser, &settings, nullptr, 0);
  http_errno error = HTTP_PARSER_ERRNO(&parser);
  if (error != HPE_OK) {
    throw FuzzFinding("http: the server's output is not well-formed HTTP (" +
                      std::string(http_errno_name(error)) + " after " + std::to_string(responses) +
                      " responses, at byte " + std::to_string(used) + "):\n" + received.bytes +
                      "\ninput:\n" + std::string(input));
  }
}

}  // namespace

HttpRequestTarget::HttpRequestTarget()
    : server_(std::make_unique<testing::TestServer>("fuzz", kRoutes)) {}

HttpRequestTarget::~HttpRequestTarget() = default;

void HttpRequestTarget::run(std::string_view input) const {
  testing::RawConnection connection(server_->port());
  try {
    connection.send(std::string(input));
  } catch (const std::runtime_error&) {
    // The server answered and closed before taking all the input (a 400, say): allowed.
  }
  connection.shutdown_write();
  Received received = read_until_closed(connection.fd(), input);
  // The answer to HEAD has a Content-Length but no body, which a response parser cannot know.
  if (input.find("HEAD") == std::string_view::npos) check_responses(received, input);
}

}  // namespace depot::fuzz
