// N `depot serve` processes (replicas) on one shared store behind a round-robin balancer, for the
// scale-out scenarios: each replica runs from its own directory (its log, its config) with the
// same services and the same data directory. The shared store: LMDB shared between the processes
// and the files on one filesystem (the one-host mode), or — with DEPOT_TEST_CLUSTER=postgres+s3 in
// the environment (the CTest entries "on postgres+s3: ...") — kv on the process's PostgreSQL test
// server (a fresh database per cluster) and the bytes on s3rver (a fresh prefix per cluster).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/depot_process.hpp"
#include "tests/support/round_robin.hpp"
#include "tests/support/s3_server.hpp"

namespace depot::testing {

class DepotCluster {
 public:
  // `services`: the "services" array of a Depot config; every replica serves all of them with
  // `threads` workers. A service's "script" is a key of `scripts` (name → source of its init.lua,
  // written for this cluster), or else one of the repository's scripts/ or an absolute path.
  DepotCluster(size_t replicas, nlohmann::json services,
               const std::map<std::string, std::string>& scripts = {}, int threads = 2);
  ~DepotCluster();
  DepotCluster(const DepotCluster&) = delete;
  DepotCluster& operator=(const DepotCluster&) = delete;

  // The balancer's port: each new connection goes to the next replica.
  uint16_t port() const { return balancer_->port(); }
  uint16_t replica_port(size_t index) const { return replicas_[index]->port; }
  size_t size() const { return replicas_.size(); }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  RoundRobin& balancer() { return *balancer_; }
  // The S3 server holding the bytes, or nullptr when they are files in data_dir().
  S3Server* s3() const { return s3_; }
  // The S3 prefix of this cluster's bytes ("" on files).
  const std::string& s3_prefix() const { return s3_prefix_; }
  // Whether the kv store is PostgreSQL (depot.notify then reaches every replica).
  bool on_postgres() const { return !kv_url_.empty(); }
  // What replica `index` logged so far.
  std::string log(size_t index) const;
  // SIGKILL, as a crashed machine: no cleanup of any kind runs.
  void kill(size_t index);

 private:
  std::filesystem::path root_;
  std::filesystem::path data_dir_;
  S3Server* s3_ = nullptr;
  std::string s3_prefix_;
  std::string kv_url_;
  std::vector<std::unique_ptr<DepotProcess>> replicas_;
  std::unique_ptr<RoundRobin> balancer_;
};

}  // namespace depot::testing
