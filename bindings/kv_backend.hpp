// The storage under the `kv` module: what a backend must do, whatever keeps the bytes. Two
// implementations: LMDB in the data directory (bindings/kv_lmdb.cpp, the default) and PostgreSQL
// (bindings/kv_postgres.cpp, with "storage": {"kv": "postgres://..."} or DEPOT_KV_URL).
//
// Keys and values are bytes here; kv.cpp encodes Lua values (the same encoding on every backend).
// Keys order bytewise. Every operation ends by calling its `done` exactly once: at once, or later
// — on the calling task's worker thread (PostgreSQL, whose connections live there) or on a thread
// of the backend's own (LMDB's writer and syncer threads); `done` resumes the task through its
// TaskHandle, which any thread may do. `worker` is the calling task's worker inside a task, and
// null elsewhere (load time, `depot admin`, unit tests, a coroutine the script created), where a
// backend completes at once: it works on the calling thread, blocking if it must.
//
// db:update promises that `fn` runs against one consistent state and that its writes commit
// atomically, only if nothing it read changed meanwhile — across every process sharing the store.
// `fn` never waits (it runs through a C boundary); a backend may run it more than once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace depot {

class Worker;

using KvPairs = std::vector<std::pair<std::string, std::string>>;

// db:iter's options: keys from `from` (inclusive) to `to` (exclusive), within `prefix`.
struct KvRange {
  std::string prefix, from, to;
  bool reverse = false;
  size_t limit = SIZE_MAX;

  // The bounds all three make: [low, high), high empty for no upper bound.
  std::string low() const;
  std::string high() const;
};

struct KvOutcome {
  std::string error;  // empty on success
  std::optional<std::string> value;
  bool flag = false;    // exists: found; delete: existed; update: fn must run again
  bool raised = false;  // update: fn raised (its error is the caller's), nothing was written
  uint64_t count = 0;
  KvPairs pairs;
};
using KvDone = std::function<void(KvOutcome)>;

// The tx of db:update: reads and writes that never wait.
class KvTransaction {
 public:
  virtual ~KvTransaction() = default;
  virtual std::optional<std::string> get(const std::string& db, std::string_view key) = 0;
  virtual void put(const std::string& db, std::string_view key, const std::string& value) = 0;
  virtual bool remove(const std::string& db, std::string_view key) = 0;
  virtual KvPairs scan(const std::string& db, const KvRange& range) = 0;
};

// What db:update keeps between runs of fn (a snapshot of what it read, say).
class KvAttempt {
 public:
  virtual ~KvAttempt() = default;
};

// Runs the script's fn against `tx`: true if it returned, false if it raised.
using KvFunction = std::function<bool(KvTransaction& tx)>;

// One call: which database of the store, where it runs, and how durable its writes must be.
struct KvCall {
  Worker* worker = nullptr;
  const std::string& db;
  bool durable = true;
};

class KvBackend {
 public:
  virtual ~KvBackend() = default;
  // Whether calls wait for a server even without a worker (then a coroutine the script made
  // itself cannot call them: it could only block the worker thread). LMDB does not: without a
  // worker it works on the calling thread, as it always did.
  virtual bool waits() const = 0;
  // kv.open(name): creates the named database where the backend has such a thing (LMDB; the
  // metrics list its queues' databases from the moment they are opened). May throw.
  virtual void open_database(const std::string& name) = 0;
  virtual void get(const KvCall& call, std::string_view key, KvDone done) = 0;
  virtual void exists(const KvCall& call, std::string_view key, KvDone done) = 0;
  virtual void put(const KvCall& call, std::string_view key, std::string value, KvDone done) = 0;
  virtual void remove(const KvCall& call, std::string_view key, KvDone done) = 0;
  virtual void scan(const KvCall& call, const KvRange& range, KvDone done) = 0;
  virtual void count(const KvCall& call, const std::string& prefix, KvDone done) = 0;
  // One step of db:update: runs `fn` and commits what it wrote. done.raised: fn raised, nothing
  // was written. done.flag: run the step again with the same attempt (a conflict, or fn read
  // what the attempt had not fetched yet, or a database LMDB's snapshot had no handle for).
  // `fn` runs before update returns, never later.
  virtual void update(const KvCall& call, const std::shared_ptr<KvAttempt>& attempt,
                      const KvFunction& fn, KvDone done) = 0;
  virtual std::shared_ptr<KvAttempt> new_attempt() = 0;
  // kv.sync: every write so far on disk (inside a task, the task waits for it).
  virtual void sync(Worker* worker, KvDone done) = 0;
};

// The backend of this server's config (`storage.kv`, or DEPOT_KV_URL which wins), shared by
// every Lua state of the process that names the same store; throws std::runtime_error.
std::shared_ptr<KvBackend> kv_backend(const std::filesystem::path& data_dir,
                                      const nlohmann::json& config);
// The store's URL of that config ("" for LMDB in the data directory).
std::string kv_url(const nlohmann::json& config);
bool is_postgres_url(const std::string& url);

}  // namespace depot
