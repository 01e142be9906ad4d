// Listening TCP sockets: the main listener's (one per worker, SO_REUSEPORT) and the admin one.
#pragma once

#include <cstdint>
#include <string>

#include "engine/unique_fd.hpp"

namespace depot {

// A non-blocking listening socket on host:port (host "" or "0.0.0.0": every IPv4 address).
// Throws std::runtime_error saying which address could not be resolved or bound.
UniqueFd bind_listener(const std::string& host, uint16_t port);
// The port a bound socket listens on (the one the kernel picked for port 0).
uint16_t bound_port(int fd);

}  // namespace depot
