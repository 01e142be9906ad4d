// The kv backends of the kv tests (see kv_backends.hpp).
#include "tests/support/kv_backends.hpp"

#include "tests/support/postgres_server.hpp"

namespace depot::testing {

std::vector<std::string> kv_backends() {
  if (!PostgresServer::available()) return {"lmdb"};
  return {"lmdb", "postgres"};
}

nlohmann::json kv_config(const std::string& backend) {
  if (backend != "postgres") return nlohmann::json::object();
  return {{"storage", {{"kv", PostgresServer::shared().create_database()}}}};
}

std::string kv_url_of(const nlohmann::json& config) {
  if (!config.contains("storage")) return "";
  return config["storage"]["kv"].get<std::string>();
}

}  // namespace depot::testing
