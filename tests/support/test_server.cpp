// Embedded server for end-to-end tests (see test_server.hpp).
#include "tests/support/test_server.hpp"

#include <fstream>
#include <random>

#include "engine/log.hpp"

namespace depot::testing {

std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() /
              (prefix + std::to_string(random()) + std::to_string(random()));
  std::filesystem::create_directories(path);
  return path;
}

TestServer::TestServer(std::vector<Service> services, std::function<void(Options&)> adjust) {
  root_ = make_temp_dir("depot-e2e-");
  scripts_dir_ = root_ / "scripts";
  data_dir_ = root_ / "data";
  std::filesystem::create_directories(scripts_dir_ / "lib");
  Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  options.scripts_dir = scripts_dir_;
  options.data_dir = data_dir_;
  options.watch_scripts = false;
  options.drain_timeout = std::chrono::seconds(5);
  for (const Service& service : services) {
    write_script(service.name, service.source);
    options.services.push_back(
        ServiceSpec{service.name, service.name, service.mounts, service.config});
  }
  if (adjust) adjust(options);
  if (!std::getenv("DEPOT_TEST_LOGS")) log::set_level(log::Level::error);
  server_ = std::make_unique<Server>(options);
  server_->start();
}

TestServer::~TestServer() {
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

void TestServer::write_script(const std::string& service, const std::string& source) {
  std::filesystem::create_directories(scripts_dir_ / service);
  // Written to a temporary name and renamed, as editors do, so a watcher never sees half a file.
  auto temporary = scripts_dir_ / service / "init.lua.tmp";
  std::ofstream(temporary) << source;
  std::filesystem::rename(temporary, scripts_dir_ / service / "init.lua");
}

}  // namespace depot::testing
