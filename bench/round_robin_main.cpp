// The tests' round-robin balancer (tests/support/round_robin.*) as a program for
// bench/scale_out.sh: `round_robin PORT...` relays connections on a free loopback port, printed on
// stdout, to the given backend ports in turn until SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/support/round_robin.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: round_robin BACKEND_PORT...\n");
    return 2;
  }
  std::vector<uint16_t> backends;
  for (int i = 1; i < argc; ++i) backends.push_back(static_cast<uint16_t>(std::atoi(argv[i])));
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  // Blocked before the relay thread starts, so that only sigwait below receives them.
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  depot::testing::RoundRobin balancer(backends);
  std::printf("%u\n", balancer.port());
  std::fflush(stdout);
  int received = 0;
  sigwait(&stop_signals, &received);
  return 0;
}
