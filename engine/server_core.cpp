// Server-wide shared state (see server_core.hpp).
#include "engine/server_core.hpp"

namespace depot {

ServerCore::ServerCore(Options options, std::vector<UniqueFd> listen_fds)
    : options_(std::move(options)),
      listen_fds_(std::move(listen_fds)),
      workers_(listen_fds_.size(), nullptr),
      pool_(options_.blocking_threads, 4096) {}

ServerCore::~ServerCore() = default;

void ServerCore::register_worker(size_t index, Worker* worker) { workers_.at(index) = worker; }

}  // namespace depot
