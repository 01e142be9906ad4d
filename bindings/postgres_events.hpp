// depot.wait/depot.notify across replicas when the kv store is PostgreSQL: LISTEN/NOTIFY on one
// connection per process, on a thread of its own (it blocks in poll(), never a reactor thread).
// A notify is sent as pg_notify('depot_events', name); a notification from another process wakes
// the waiters of that name here. The process's own notifications come back too and are skipped
// (its waiters were woken at once, locally). A dropped connection is opened again after a
// second; notifies of the gap are lost (a wait has its timeout for that). Names longer than
// PostgreSQL's 8000-byte payload stay local. CockroachDB and YugabyteDB have no LISTEN: there
// the relay logs a warning once and events stay within each process.
#pragma once

#include <memory>
#include <string>

#include "engine/named_events.hpp"

namespace depot {

std::unique_ptr<NamedEventsRelay> postgres_events_relay(const std::string& url,
                                                        NamedEvents& events);

}  // namespace depot
