// Which kv backend a server uses, and the key ranges every backend shares (see kv_backend.hpp).
#include "bindings/kv_backend.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

#include "bindings/kv_lmdb.hpp"
#include "bindings/kv_postgres.hpp"

namespace depot {
namespace {
constexpr size_t kDefaultMapSize = size_t{1} << 30;
}  // namespace

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

std::string KvRange::low() const {
  return std::max(prefix, from);
}

std::string KvRange::high() const {
  std::string high = to;
  if (prefix.empty()) return high;
  // The first key after every key with the prefix (none if the prefix is all 0xff bytes).
  std::string after = prefix;
  while (!after.empty() && static_cast<unsigned char>(after.back()) == 0xff) after.pop_back();
  if (after.empty()) return high;
  after.back() = static_cast<char>(after.back() + 1);
  return high.empty() || after < high ? after : high;
}

std::string kv_url(const nlohmann::json& config) {
  if (const char* url = std::getenv("DEPOT_KV_URL"); url != nullptr && *url != '\0') return url;
  if (config.contains("storage") && config["storage"].is_object() &&
      config["storage"].contains("kv") && config["storage"]["kv"].is_string()) {
    return config["storage"]["kv"].get<std::string>();
  }
  return "";
}

std::shared_ptr<KvBackend> kv_backend(const std::filesystem::path& data_dir,
                                      const nlohmann::json& config) {
  std::string url = kv_url(config);
  if (url.empty()) {
    size_t map_size = kDefaultMapSize;
    if (config.contains("kv") && config["kv"].contains("map_size")) {
      map_size = config["kv"]["map_size"].get<size_t>();
    }
    return std::make_shared<LmdbBackend>(data_dir / "kv", map_size);
  }
  if (!is_postgres_url(url)) {
    throw std::runtime_error("storage.kv must be a postgres:// or postgresql:// URL (or absent)");
  }
  // One per URL and process: its connections are per worker, whatever state opened it.
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<KvBackend>> backends;
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<KvBackend>& backend = backends[url];
  if (!backend) backend = std::make_shared<PostgresBackend>(url);
  return backend;
}

}  // namespace depot
