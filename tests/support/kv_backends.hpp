// The kv backends the kv tests run against, for Catch's GENERATE: "lmdb" always, "postgres"
// where PostgreSQL is installed (on the process's shared test server, a fresh database each).
//
//   std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
//   LuaFixture lua(depot::testing::kv_config(backend));
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace depot::testing {

std::vector<std::string> kv_backends();
// The server config that selects `backend`: {} for LMDB, {"storage": {"kv": <url>}} with a new
// empty database for PostgreSQL.
nlohmann::json kv_config(const std::string& backend);
// The kv URL of a config kv_config made ("" for LMDB).
std::string kv_url_of(const nlohmann::json& config);

}  // namespace depot::testing
