// db:update inside a task on LMDB (the design is at the top of kv_lmdb.cpp): fn runs on the
// worker against a snapshot, recording what it read and buffering what it wrote; the writer
// thread applies the writes only if every read still gives the same answer.
#pragma once

#include "bindings/kv_backend.hpp"

namespace depot {

class LmdbEnv;

// Runs `fn` now against a read transaction of `env`, then queues its writes for the writer
// thread. `done` as KvBackend::update's: at once if fn raised or wrote nothing, else on the
// writer thread (on the syncer thread after the fsync for a durable write).
void update_on_snapshot(LmdbEnv& env, bool durable, const KvFunction& fn, KvDone done);

}  // namespace depot
