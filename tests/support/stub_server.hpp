// A Depot serving the repository's scripts with test upstreams (tests/stubs/<name>, served by Depot
// itself) mounted on it, two worker threads: how a service test gets its OpenID provider, Slack
// sink or auth service. The service under test comes after the server listens, with add_service:
// its settings name the stubs' URLs, and so the port.
// Header-only: a new .cpp under tests/support re-runs CMake's glob and rebuilds the whole tree.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/test_server.hpp"

namespace depot::testing {

struct Stub {
  std::string name;  // tests/stubs/<name>, also the service's name
  std::string mount;
  nlohmann::json config = nlohmann::json::object();
};

// `adjust` changes the options further (threads, data_dir, storage) before the server starts.
inline std::unique_ptr<TestServer> serve_stubs(const std::vector<Stub>& stubs,
                                               const std::function<void(Options&)>& adjust = {}) {
  return std::make_unique<TestServer>(std::vector<TestServer::Service>{}, [&](Options& options) {
    options.threads = 2;
    options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
    for (const Stub& stub : stubs) {
      options.services.push_back(
          {stub.name, DEPOT_SOURCE_DIR "/tests/stubs/" + stub.name, {stub.mount}, stub.config});
    }
    if (adjust) adjust(options);
  });
}

// "http://127.0.0.1:<port><path>" on `server`.
inline std::string url_on(const TestServer& server, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + path;
}

// Mounts `service` on the running `server`; throws "<name> did not load: <why>" if it fails.
inline void add_service(TestServer& server, ServiceSpec service) {
  std::string name = service.name;
  std::string error = server.server().add_service(std::move(service));
  if (!error.empty()) throw std::runtime_error(name + " did not load: " + error);
}

}  // namespace depot::testing
