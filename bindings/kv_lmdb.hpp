// kv on LMDB in the data directory: the default backend (see kv_backend.hpp, and kv_lmdb.cpp for
// which thread does what).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>

#include "bindings/kv_backend.hpp"

namespace depot {

class LmdbEnv;
class LmdbWriting;

class LmdbBackend final : public KvBackend {
 public:
  // The store in `directory` (this process's one environment for it; `map_size` applies when
  // the process first opens it).
  LmdbBackend(const std::filesystem::path& directory, size_t map_size);

  bool waits() const override { return false; }
  void open_database(const std::string& name) override;
  void get(const KvCall& call, std::string_view key, KvDone done) override;
  void exists(const KvCall& call, std::string_view key, KvDone done) override;
  void put(const KvCall& call, std::string_view key, std::string value, KvDone done) override;
  void remove(const KvCall& call, std::string_view key, KvDone done) override;
  void scan(const KvCall& call, const KvRange& range, KvDone done) override;
  void count(const KvCall& call, const std::string& prefix, KvDone done) override;
  void update(const KvCall& call, const std::shared_ptr<KvAttempt>& attempt, const KvFunction& fn,
              KvDone done) override;
  std::shared_ptr<KvAttempt> new_attempt() override;
  void sync(Worker* worker, KvDone done) override;

 private:
  // Outside a task: `work` in a write transaction on this thread (it returns whether it changed
  // the store), then a durable write's fsync, here too. Throws.
  void write_here(const KvCall& call, const std::function<bool(LmdbWriting&)>& work);

  std::shared_ptr<LmdbEnv> env_;
};

}  // namespace depot
