// Another replica for tests of what spans processes: the real `depot serve` in a directory of
// its own, serving one script at "/" on the kv store of a config (kv_backends.hpp's kv_config;
// for LMDB, the given data dir, shared with the test's own server). Removed by the destructor.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/depot_process.hpp"

namespace depot::testing {

class Replica {
 public:
  Replica(const nlohmann::json& config, const std::filesystem::path& data_dir,
          const std::string& script);
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  uint16_t port() const { return process_->port; }  // 0 if it did not start
  // What it logged so far (for a failing test's message).
  std::string log() const;

 private:
  std::filesystem::path root_;
  std::unique_ptr<DepotProcess> process_;
};

}  // namespace depot::testing
