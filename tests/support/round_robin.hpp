// A tiny TCP load balancer for tests and bench/scale_out.sh: listens on 127.0.0.1 and relays each
// connection, in turn, to the next of N backends (per-connection round-robin, as a plain L4
// balancer does). Bytes flow both ways as they come, through one 64 KiB buffer per direction: a
// side that does not read stops the other side's reads (backpressure, bounded memory). One thread
// does all the relaying with epoll; it never looks at HTTP, so keep-alive, streaming bodies and
// half-closes pass through untouched.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace depot::testing {

class RoundRobin {
 public:
  // Starts relaying at once; backends are ports on 127.0.0.1.
  explicit RoundRobin(std::vector<uint16_t> backends);
  ~RoundRobin();
  RoundRobin(const RoundRobin&) = delete;
  RoundRobin& operator=(const RoundRobin&) = delete;

  uint16_t port() const { return port_; }
  // How many connections went to each backend so far (same order as the constructor's).
  std::vector<uint64_t> connections() const;

 private:
  void run();

  std::vector<uint16_t> backends_;
  std::vector<std::atomic<uint64_t>> connections_;
  int listener_ = -1;
  int stop_ = -1;  // an eventfd: written by the destructor to end run()
  uint16_t port_ = 0;
  std::thread relay_;
};

}  // namespace depot::testing
