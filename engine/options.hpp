// Everything a Depot server is configured with. The `depot` binary fills it from the config file,
// environment, .env and command line (config.cpp); embedders fill it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace depot {

using namespace std::chrono_literals;

struct Limits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers → 431
  size_t max_header_count = 100;        // → 431
  size_t max_body_bytes =
      1024 * 1024;  // default cap for req:body() (buffered) → 413; routes may raise it
  std::chrono::milliseconds header_timeout = 30s;     // the whole head, from its first byte → 408
  std::chrono::milliseconds body_timeout = 60s;       // idle while reading the body → 408
  std::chrono::milliseconds keepalive_timeout = 75s;  // idle between requests → close
  std::chrono::milliseconds send_timeout = 60s;  // no write progress to a blocked client → close
  // A request task waiting this long without progress (its body arriving, its output draining)
  // → 503 (0 = none); a route may set its own (route option `deadline`).
  std::chrono::milliseconds request_deadline = 300s;
  // The longest a task may run without waiting: its worker serves no one else meanwhile → 503.
  std::chrono::milliseconds cpu_slice = 2s;
  // Running a service script's top level (its load, at start and at each reload) longer than this
  // refuses that generation: an endless loop there would hold its worker forever (0 = none).
  std::chrono::milliseconds load_deadline = 10s;
  size_t lua_memory = size_t{512} << 20;  // bytes per Lua state (per worker and generation) → 500
  uint64_t instruction_budget = 0;        // Lua VM instructions per request → 500 (0 = none)
  // Open client connections of the server, all workers together. At the limit the oldest idle
  // keep-alive connection is closed for a new one; with none idle the new one is answered 503.
  // 0: min(RLIMIT_NOFILE - 128, 10000), so descriptors remain for files, LMDB and upstreams.
  size_t max_connections = 0;
};

// A route script mounted at one or more URL prefixes.
struct ServiceSpec {
  std::string name;
  // A directory with init.lua, or a .lua file; relative paths are under the scripts dir.
  std::filesystem::path script;
  std::vector<std::string> mounts = {"/"};
  nlohmann::json config = nlohmann::json::object();  // the service's own section
  // LuaJIT's compiler for this service's code. Off by default: compiled loops never call the hook
  // that stops runaway code, so with it on only code that waits or runs interpreted is stopped.
  bool jit = false;
};

// Prometheus metrics at /metrics (engine/metrics_text.hpp).
struct MetricsOptions {
  bool enabled = true;
  // "host:port" of a separate admin listener that serves only /metrics; empty: the main listener
  // serves it, unless a service has a route for that path (then the service's route answers).
  std::string listen;
};

struct Options {
  std::string host = "0.0.0.0";
  uint16_t port = 8000;  // 0 picks a free port; Server::port() tells which
  size_t threads = 2;
  std::filesystem::path data_dir = "data";
  std::filesystem::path scripts_dir = "scripts";
  std::vector<ServiceSpec> services;
  Limits limits;
  MetricsOptions metrics;
  bool watch_scripts = true;  // reload when a file under scripts_dir (or a service script) changes
  std::chrono::milliseconds drain_timeout =
      10s;                      // SIGTERM / stop(): in-flight requests get this long
  size_t blocking_threads = 4;  // thread pool for disk and other blocking work
  nlohmann::json config = nlohmann::json::object();  // the whole config document
};

}  // namespace depot
