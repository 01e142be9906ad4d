// Another `depot serve` process for multi-process tests (see replica.hpp).
#include "tests/support/replica.hpp"

#include <fstream>
#include <iterator>

#include "tests/support/test_server.hpp"

namespace depot::testing {

Replica::Replica(const nlohmann::json& config, const std::filesystem::path& data_dir,
                 const std::string& script)
    : root_(make_temp_dir("depot-replica-")) {
  std::filesystem::create_directories(root_ / "scripts" / "app");
  std::ofstream(root_ / "scripts" / "app" / "init.lua") << script;
  nlohmann::json document = config;
  document["data_dir"] = data_dir.string();
  document["scripts_dir"] = (root_ / "scripts").string();
  document["threads"] = 2;
  document["services"] = nlohmann::json::array({{{"name", "app"}, {"mount", "/"}}});
  std::ofstream(root_ / "config.json") << document.dump();
  process_ = std::make_unique<DepotProcess>(
      root_, std::vector<std::string>{"--config", "config.json", "--port", "0"});
}

std::string Replica::log() const {
  std::ifstream file(process_->log);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

Replica::~Replica() {
  process_.reset();
  std::filesystem::remove_all(root_);
}

}  // namespace depot::testing
