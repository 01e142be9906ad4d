// Outbound HTTP for one worker: a libcurl multi handle driven by the worker's epoll set and
// timers (never a blocking curl call, never a thread). Connections are reused across requests of
// the worker. A transfer that fails on a retryable status or a transport error is retried after
// an exponential backoff on a worker timer. When a transfer ends, `done` runs on the worker.
//
// One driver per worker, kept as a worker extension (Worker::extension); it must only be used on
// its worker's thread.
#pragma once

#include <curl/curl.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/event_source.hpp"
#include "engine/timer_queue.hpp"

namespace depot {

class Worker;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string body_file;    // streamed as the body when set
  std::string output_file;  // the response body goes there (via <path>.part, renamed on success)
  long timeout_ms = 30000;
  long connect_timeout_ms = 10000;
  long idle_timeout_s = 0;  // abort when no byte moves for this long (0: off)
  int retries = 0;
  std::set<long> retry_on = {429, 502, 503, 504};
  double backoff_s = 0.5;
  bool follow_redirects = false;
  bool verify_tls = true;
  size_t max_body = 64 * 1024 * 1024;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string error;       // set when the transfer failed: no response
  std::string error_kind;  // "timeout", "connect" or "transport"
  int attempts = 0;
};

class CurlDriver {
 public:
  using Done = std::function<void(HttpResponse&)>;

  static CurlDriver& of(Worker& worker);
  explicit CurlDriver(Worker& worker);
  ~CurlDriver();
  CurlDriver(const CurlDriver&) = delete;
  CurlDriver& operator=(const CurlDriver&) = delete;

  // Starts a transfer; `done` runs on the worker when it succeeded or ran out of attempts.
  // Returns "" or why it could not start.
  std::string start(HttpRequest request, Done done);

 private:
  struct Transfer;
  class Socket;

  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* driver, void* socket);
  static int on_timer(CURLM* multi, long timeout_ms, void* driver);
  std::string launch(Transfer& transfer);
  void act(curl_socket_t fd, int flags);
  void collect_finished();
  void finish(Transfer& transfer, CURLcode code);

  Worker& worker_;
  CURLM* multi_;
  TimerQueue::Id timer_ = 0;
  bool closing_ = false;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;
};

}  // namespace depot
