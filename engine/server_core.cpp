// Server-wide shared state (see server_core.hpp).
#include "engine/server_core.hpp"

#include <sys/resource.h>

#include <algorithm>

#include "bindings/kv_backend.hpp"
#include "bindings/postgres_events.hpp"

namespace depot {
namespace {
// Descriptors kept back from clients for listeners, epoll, timers, files, LMDB and upstreams.
constexpr rlim_t kReservedDescriptors = 128;
constexpr size_t kDefaultMaxConnections = 10000;

size_t resolve_max_connections(size_t configured) {
  if (configured != 0) return configured;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return kDefaultMaxConnections;
  rlim_t usable = limit.rlim_cur > 2 * kReservedDescriptors ? limit.rlim_cur - kReservedDescriptors
                                                            : limit.rlim_cur / 2;
  return std::min<size_t>(static_cast<size_t>(usable), kDefaultMaxConnections);
}
}  // namespace

ServerCore::ServerCore(Options options, std::vector<UniqueFd> listen_fds)
    : options_(std::move(options)),
      listen_fds_(std::move(listen_fds)),
      workers_(listen_fds_.size(), nullptr),
      max_connections_(resolve_max_connections(options_.limits.max_connections)),
      metrics_(listen_fds_.size()),
      pool_(options_.blocking_threads, 4096),
      watchdog_(listen_fds_.size(), PreemptionWatchdog::period_for(options_.limits)) {
  // With the kv store on PostgreSQL, depot.wait/notify reach every replica sharing it.
  std::string kv = kv_url(options_.config);
  if (is_postgres_url(kv)) events_.set_relay(postgres_events_relay(kv, events_));
}

// The relay's thread first: it wakes tasks through the workers' inboxes.
ServerCore::~ServerCore() {
  events_.set_relay(nullptr);
}

void ServerCore::register_worker(size_t index, Worker* worker) {
  workers_.at(index) = worker;
}

}  // namespace depot
