// The admin listener's thread (see metrics_listener.hpp).
#include "engine/metrics_listener.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string_view>

#include "engine/listen_socket.hpp"
#include "engine/log.hpp"
#include "engine/metrics_text.hpp"

namespace depot {
namespace {
constexpr auto kReadTimeout = std::chrono::seconds(5);
constexpr size_t kMaxHead = 8 * 1024;
constexpr int kSendTimeoutSeconds = 5;

// "host:port" or "[v6]:port" → host and port.
std::pair<std::string, uint16_t> parse_listen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  auto invalid = [&] {
    return std::runtime_error("metrics.listen must be host:port (\"127.0.0.1:9100\"), got '" +
                              listen + "'");
  };
  if (colon == std::string::npos || colon + 1 == listen.size()) throw invalid();
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  for (char c : listen.substr(colon + 1)) {
    if (c < '0' || c > '9' || (port = port * 10 + static_cast<unsigned long>(c - '0')) > 65535)
      throw invalid();
  }
  return {host, static_cast<uint16_t>(port)};
}

std::string answer(int status, std::string_view reason, std::string_view content_type,
                   std::string_view body, bool head_only, std::string_view extra = "") {
  std::string text =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Type: ";
  text.append(content_type).append("\r\nContent-Length: ").append(std::to_string(body.size()));
  text.append("\r\n").append(extra).append("Connection: close\r\n\r\n");
  if (!head_only) text.append(body);
  return text;
}

// Reads the request head; "" when the client sent none in time (or too much).
std::string read_head(int client) {
  std::string head;
  auto deadline = std::chrono::steady_clock::now() + kReadTimeout;
  while (head.find("\r\n\r\n") == std::string::npos && head.size() <= kMaxHead) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd ready{client, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) <= 0) return "";
    char buffer[2048];
    ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
    if (n <= 0) return "";
    head.append(buffer, static_cast<size_t>(n));
  }
  return head.size() <= kMaxHead ? head : "";
}
}  // namespace

MetricsListener::MetricsListener(const std::string& listen, std::function<std::string()> render)
    : wake_(::eventfd(0, EFD_CLOEXEC)), render_(std::move(render)) {
  auto [host, port] = parse_listen(listen);
  try {
    listener_ = bind_listener(host, port);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("metrics.listen: ") + e.what());
  }
  port_ = bound_port(listener_.get());
  thread_ = std::thread([this] { run(); });
  log::info("metrics listening", {{"host", host}, {"port", port_}, {"path", metrics::kPath}});
}

MetricsListener::~MetricsListener() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void MetricsListener::run() {
  for (;;) {
    pollfd ready[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(ready, 2, -1) < 0 && errno != EINTR) return;
    if (ready[1].revents != 0) return;
    if ((ready[0].revents & POLLIN) == 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) continue;  // EAGAIN (another thread took it), or a connection already gone
    timeval send_timeout{kSendTimeoutSeconds, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    try {
      serve(client.get());
    } catch (const std::exception& e) {
      log::error("metrics scrape failed", {{"error", e.what()}});
    }
  }
}

void MetricsListener::serve(int client) {
  std::string head = read_head(client);
  if (head.empty()) return;
  std::string_view line(head.data(), head.find("\r\n"));
  size_t space = line.find(' ');
  size_t second = space == std::string_view::npos ? space : line.find(' ', space + 1);
  std::string reply;
  if (second == std::string_view::npos) {
    reply = answer(400, "Bad Request", "text/plain", "bad request\n", false);
  } else {
    std::string_view method = line.substr(0, space);
    std::string_view target = line.substr(space + 1, second - space - 1);
    std::string_view path = target.substr(0, target.find('?'));
    bool head_only = method == "HEAD";
    if (path != metrics::kPath) {
      reply = answer(404, "Not Found", "text/plain", "only /metrics is served here\n", head_only);
    } else if (method != "GET" && !head_only) {
      reply = answer(405, "Method Not Allowed", "text/plain", "GET or HEAD\n", false,
                     "Allow: GET, HEAD\r\n");
    } else {
      reply = answer(200, "OK", metrics::kContentType, render_(), head_only);
    }
  }
  for (size_t sent = 0; sent < reply.size();) {
    ssize_t n = ::send(client, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(client, SHUT_WR);
}

}  // namespace depot
