// Raw HTTP/1.1 test client (see http_client.hpp).
#include "tests/support/http_client.hpp"

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace depot::testing {
namespace {

struct ParseState {
  HttpResponse response;
  std::string field;
  std::string value;
  bool in_value = false;
  bool complete = false;
};

int on_header_field(http_parser* parser, const char* data, size_t length) {
  auto* state = static_cast<ParseState*>(parser->data);
  if (state->in_value) {
    std::string name = state->field;
    for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    state->response.headers[name] = state->value;
    state->field.clear();
    state->value.clear();
    state->in_value = false;
  }
  state->field.append(data, length);
  return 0;
}

int on_header_value(http_parser* parser, const char* data, size_t length) {
  auto* state = static_cast<ParseState*>(parser->data);
  state->value.append(data, length);
  state->in_value = true;
  return 0;
}

int on_headers_complete(http_parser* parser) {
  auto* state = static_cast<ParseState*>(parser->data);
  if (!state->field.empty()) {
    std::string name = state->field;
    for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    state->response.headers[name] = state->value;
  }
  state->response.status = static_cast<int>(parser->status_code);
  return 0;
}

int on_body(http_parser* parser, const char* data, size_t length) {
  static_cast<ParseState*>(parser->data)->response.body.append(data, length);
  return 0;
}

int on_message_complete(http_parser* parser) {
  static_cast<ParseState*>(parser->data)->complete = true;
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

RawConnection::RawConnection(uint16_t port)
    : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    int error = errno;
    ::close(fd_);  // no destructor runs for a constructor that throws
    throw std::runtime_error(std::string("connect: ") + strerror(error));
  }
}

RawConnection::~RawConnection() {
  ::close(fd_);
}

void RawConnection::set_receive_buffer(int bytes) {
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

void RawConnection::send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error(std::string("send: ") + strerror(errno));
    sent += static_cast<size_t>(n);
  }
}

void RawConnection::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

std::string RawConnection::read_some(std::chrono::milliseconds timeout) {
  pollfd poll_fd{fd_, POLLIN, 0};
  if (::poll(&poll_fd, 1, static_cast<int>(timeout.count())) <= 0) return "";
  char chunk[65536];
  ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  return n > 0 ? std::string(chunk, static_cast<size_t>(n)) : "";
}

std::optional<HttpResponse> RawConnection::read_response(std::chrono::milliseconds timeout,
                                                         bool head_request) {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = head_request ? +[](http_parser* p) { on_headers_complete(p); return 1; }
                                              : on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  ParseState state;
  parser.data = &state;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool eof = false;
  for (;;) {
    if (!buffer_.empty()) {
      size_t used = http_parser_execute(&parser, &settings, buffer_.data(), buffer_.size());
      buffer_.erase(0, used);
      if (state.complete) return state.response;
      if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) return std::nullopt;
    }
    if (eof) {
      http_parser_execute(&parser, &settings, nullptr, 0);  // a body delimited by close
      if (state.complete) return state.response;
      return std::nullopt;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd poll_fd{fd_, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof = true;
      continue;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

bool RawConnection::closed_by_peer(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd poll_fd{fd_, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return true;
  }
}

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& target,
                          const std::string& body, const std::string& extra_headers) {
  RawConnection connection(port);
  std::string request =
      method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!extra_headers.empty()) request += extra_headers + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  connection.send(request);
  auto response = connection.read_response(std::chrono::seconds(30), method == "HEAD");
  if (!response) throw std::runtime_error("no response to " + method + " " + target);
  return *response;
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("free_port: ") + strerror(errno));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

EagerClient::EagerClient(uint16_t port, std::string target) {
  thread_ = std::thread([this, port, target] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      std::unique_ptr<RawConnection> connection;
      try {
        connection = std::make_unique<RawConnection>(port);
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // nothing listens yet
        continue;
      }
      connected_ = true;
      connection->send("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      auto response = connection->read_response(std::chrono::seconds(15));
      if (response) status_ = response->status;
      return;
    }
  });
}

EagerClient::~EagerClient() {
  if (thread_.joinable()) thread_.join();
}

int EagerClient::join() {
  if (thread_.joinable()) thread_.join();
  return status_;
}

}  // namespace depot::testing
