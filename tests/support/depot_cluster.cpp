// Replicas behind a balancer (see depot_cluster.hpp).
#include "tests/support/depot_cluster.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <stdexcept>

#include "tests/support/postgres_server.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing {
namespace {

bool on_postgres_and_s3() {
  const char* mode = std::getenv("DEPOT_TEST_CLUSTER");
  return mode != nullptr && std::string(mode) == "postgres+s3";
}

// One s3rver for the whole test process, as PostgresServer::shared() is one PostgreSQL.
S3Server& shared_s3() {
  static S3Server server;
  return server;
}

}  // namespace

DepotCluster::DepotCluster(size_t replicas, nlohmann::json services,
                           const std::map<std::string, std::string>& scripts, int threads) {
  root_ = make_temp_dir("depot-cluster-");
  data_dir_ = root_ / "shared-data";
  std::filesystem::create_directories(data_dir_);
  nlohmann::json storage = nlohmann::json::object();
  if (on_postgres_and_s3()) {
    kv_url_ = PostgresServer::shared().create_database();
    s3_ = &shared_s3();
    s3_prefix_ = root_.filename().string();
    storage = s3_->storage(s3_prefix_);
    storage["kv"] = kv_url_;
  }
  for (auto& service : services) {
    auto script = scripts.find(service.value("script", ""));
    if (script == scripts.end()) continue;
    std::filesystem::path directory = root_ / "scripts" / script->first;
    std::filesystem::create_directories(directory);
    std::ofstream(directory / "init.lua") << script->second;
    service["script"] = directory.string();
  }
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < replicas; ++i) {
    std::filesystem::path directory = root_ / ("replica-" + std::to_string(i));
    std::filesystem::create_directories(directory);
    nlohmann::json config = {{"host", "127.0.0.1"},
                             {"port", 0},
                             {"data_dir", data_dir_.string()},
                             {"scripts_dir", DEPOT_SOURCE_DIR "/scripts"},
                             {"threads", threads},
                             {"services", services}};
    if (!storage.empty()) config["storage"] = storage;
    std::ofstream(directory / "config.json") << config.dump(2);
    replicas_.push_back(std::make_unique<DepotProcess>(
        directory, std::vector<std::string>{"--config", "config.json", "--log-format", "json"}));
    if (replicas_.back()->port == 0) {
      throw std::runtime_error("replica " + std::to_string(i) + " did not start: " + log(i));
    }
    ports.push_back(replicas_.back()->port);
  }
  balancer_ = std::make_unique<RoundRobin>(ports);
}

DepotCluster::~DepotCluster() {
  balancer_.reset();
  replicas_.clear();
  std::filesystem::remove_all(root_);
}

std::string DepotCluster::log(size_t index) const {
  std::ifstream file(replicas_[index]->log);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

void DepotCluster::kill(size_t index) {
  DepotProcess& replica = *replicas_[index];
  if (replica.pid <= 0) return;
  ::kill(replica.pid, SIGKILL);
  replica.wait_exit();
}

}  // namespace depot::testing
