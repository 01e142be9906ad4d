// A deliberately low-level HTTP/1.1 client for end-to-end tests: raw bytes out, parsed
// responses in, so tests can pipeline, half-close, read slowly or send malformed input.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>

namespace depot::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const;
};

class RawConnection {
 public:
  explicit RawConnection(uint16_t port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void send(const std::string& bytes);
  void shutdown_write();
  // Reads one response (nullopt if the connection closed or `timeout` passed first).
  // `head_request`: the response to a HEAD carries no body.
  std::optional<HttpResponse> read_response(
      std::chrono::milliseconds timeout = std::chrono::seconds(10), bool head_request = false);
  // Reads raw bytes available within `timeout` (empty on close or timeout).
  std::string read_some(std::chrono::milliseconds timeout);
  // True if the server closes the connection within `timeout` (nothing else arriving).
  bool closed_by_peer(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }
  void set_receive_buffer(int bytes);

 private:
  int fd_;
  std::string buffer_;
};

// One request on a new connection. `extra_headers` are complete lines without CRLF.
HttpResponse http_request(uint16_t port, const std::string& method, const std::string& target,
                          const std::string& body = "", const std::string& extra_headers = "");

// A loopback port that was free a moment ago (Depot binds with SO_REUSEADDR), for tests that must
// know the port before the server starts.
uint16_t free_port();

// A client that sends GET `target` to `port` as soon as anything listens there (refused connects
// are retried for up to 20 s) and keeps the answer's status (-1: none came).
class EagerClient {
 public:
  EagerClient(uint16_t port, std::string target);
  ~EagerClient();
  // Whether its connection has been accepted by the kernel (it may still wait for an answer).
  bool connected() const { return connected_; }
  // Waits for the answer; returns its status.
  int join();

 private:
  std::atomic<bool> connected_{false};
  int status_ = -1;
  std::thread thread_;
};

}  // namespace depot::testing
