// An embedded Depot server for end-to-end tests: scripts written into a fresh temporary
// directory, port 0, stopped (and the directory removed) when the object goes away.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "engine/server.hpp"

namespace depot::testing {

class TestServer {
 public:
  // `services`: name → Lua source of its init.lua, each mounted at "/" unless `mounts` says else.
  struct Service {
    std::string name;
    std::string source;
    std::vector<std::string> mounts = {"/"};
    nlohmann::json config = nlohmann::json::object();
  };
  explicit TestServer(std::vector<Service> services, std::function<void(Options&)> adjust = {});
  // One service mounted at "/".
  TestServer(const std::string& name, const std::string& source,
             std::function<void(Options&)> adjust = {})
      : TestServer(std::vector<Service>{Service{name, source}}, std::move(adjust)) {}
  ~TestServer();

  uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }
  const std::filesystem::path& scripts_dir() const { return scripts_dir_; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  // Rewrites a service's init.lua (for reload tests).
  void write_script(const std::string& service, const std::string& source);

 private:
  std::filesystem::path root_;
  std::filesystem::path scripts_dir_;
  std::filesystem::path data_dir_;
  std::unique_ptr<Server> server_;
};

// A fresh empty temporary directory (removed by the caller).
std::filesystem::path make_temp_dir(const std::string& prefix);

}  // namespace depot::testing
