// The embedding API: a Depot server in a C++ program (the `depot` binary, the tests, or your own
// test harness). Start it on port 0 and ask port(); reload scripts; stop it gracefully.
//
//   depot::Options options;
//   options.port = 0;
//   options.services.push_back({"hello", "/path/to/hello.lua", {"/"}});
//   depot::Server server(options);
//   server.start();                // throws if it cannot bind or a script fails to load
//   ... http://127.0.0.1:<server.port()>/ ...
//   server.stop();                 // in-flight requests finish (up to drain_timeout)
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/options.hpp"

namespace depot {

class Server {
 public:
  explicit Server(Options options);
  ~Server();  // stops the server if it runs
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds (the port is taken and connections queue from here), loads the scripts on every worker
  // while the pool removes temporary files that dead writers left in the data dir, and only then
  // accepts: no request is ever answered "no scripts are loaded".
  void start();
  uint16_t port() const;
  // The admin listener's port (options.metrics.listen), 0 when there is none.
  uint16_t metrics_port() const;
  // Loads the scripts again. On success the new generation serves new requests while in-flight
  // ones finish on the old; returns "". Otherwise the old generation keeps serving and the
  // reason is returned (and logged).
  std::string reload();
  // Mounts another service (a test's stub, say). Before start() it is loaded with the others;
  // on a running server it is loaded at once by a reload. Returns "" or why it was refused (then
  // it is not kept).
  std::string add_service(ServiceSpec service);
  // Stops accepting, lets in-flight requests finish up to options.drain_timeout, then stops.
  void stop();
  bool running() const;
  uint64_t generation() const;
  // Lua states alive across all workers (active plus retired ones still finishing requests).
  size_t runtime_count();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot
