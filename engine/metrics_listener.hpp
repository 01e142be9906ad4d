// The admin listener (config "metrics": {"listen": "host:port"}): a socket apart from the main
// one that answers GET /metrics and nothing else, so scrapes can be kept off the public port and
// never meet a service's routes. One thread of its own serves one connection at a time and closes
// it after the answer (Prometheus reconnects per scrape anyway); a client gets kReadTimeout to
// send its request head (at most kMaxHead bytes), so a stalled client delays a scrape by no more.
//
// It never touches a worker: the scrape reads the workers' counts as any thread may
// (engine/metrics.hpp). Stop it (destroy it) before the ServerCore it renders goes away.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "engine/unique_fd.hpp"

namespace depot {

class MetricsListener {
 public:
  // Binds `listen` ("host:port", "[::1]:9100"; port 0 picks one) at once: throws
  // std::runtime_error naming metrics.listen if it cannot. `render` produces the scrape.
  MetricsListener(const std::string& listen, std::function<std::string()> render);
  ~MetricsListener();
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  uint16_t port() const { return port_; }

 private:
  void run();
  void serve(int client);

  UniqueFd listener_;
  UniqueFd wake_;  // an eventfd: the destructor's "stop"
  uint16_t port_ = 0;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace depot
