// The `depot` command: `depot serve` runs the server, `depot check` checks its config and scripts,
// `depot admin` runs a service's admin command, `depot test` runs Lua specs, `depot version`;
// `depot help` says how.
#include <curl/curl.h>
#include <lmdb.h>
#include <luajit.h>
#include <signal.h>
#include <sodium.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "engine/check.hpp"
#include "engine/config.hpp"
#include "engine/generation.hpp"
#include "engine/log.hpp"
#include "engine/runtime.hpp"
#include "engine/server.hpp"
#include "engine/test_command.hpp"

namespace {

const char* const kUsage = R"(usage: depot serve [options]
       depot check [options]
       depot admin [options] COMMAND [ARGUMENTS...]
       depot test [options] [BUSTED OPTIONS] [PATHS...]
       depot version

serve: runs the Depot HTTP server with the route scripts named in the config file.
check: loads the config and every script without serving (like nginx -t): reports unknown
       config keys, load errors, route conflicts, services a missing setting leaves unmounted
       and settings no script reads; exits 0 when `depot serve` would start, 1 otherwise.
admin: runs a service's admin command (e.g. expire-all) against the same data dir, safely
       while the server runs; long commands show their progress on stderr.
test:  runs busted specs (*_spec.lua files; a path is a file or a directory, searched
       recursively; default: the scripts dir, with the shipped services' specs) inside Depot's
       runtime, with the module depot.spec to start servers for them (docs/lua-api.md).
       Busted's options pass through (-o TAP, --filter PATTERN); exits 0 when all pass, else 1.
version: prints Depot's version and those of the libraries it runs on.

options (each also from the environment, and from ./.env):
  --config FILE      config file (DEPOT_CONFIG; default config/depot.json)
  --host HOST        listen address (DEPOT_HOST; default 0.0.0.0)
  --port N           listen port, 0 picks a free one (DEPOT_PORT; default 8000)
  --data-dir DIR     data directory (DEPOT_DATA_DIR; default ./data)
  --scripts DIR      route scripts directory (DEPOT_SCRIPTS; default ./scripts)
  --threads N        reactor threads (DEPOT_THREADS; default: one per core)
  --log-level LEVEL  debug, info, warn or error (DEPOT_LOG_LEVEL; default info)
  --log-format F     json, text or auto (DEPOT_LOG_FORMAT; default auto: text when stderr is a
                     terminal, JSON lines otherwise)

signals: SIGHUP reloads the scripts; SIGTERM and SIGINT stop gracefully (requests get
         drain_timeout; a worker still stuck 3 s after that makes the process exit 1).
)";

int parse_number(const std::string& option, const char* text) {
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == strlen(text)) return value;
  } catch (const std::exception&) {
  }
  throw depot::ConfigError(option + " needs a number, got '" + text + "'");
}

// Sets the Depot option `option` to `value`; false when Depot has no such option.
bool set_option(depot::CommandLine& command_line, const std::string& option, const char* value) {
  if (option == "--config")
    command_line.config_file = value;
  else if (option == "--host")
    command_line.host = value;
  else if (option == "--port")
    command_line.port = parse_number(option, value);
  else if (option == "--data-dir")
    command_line.data_dir = value;
  else if (option == "--scripts")
    command_line.scripts_dir = value;
  else if (option == "--threads")
    command_line.threads = parse_number(option, value);
  else if (option == "--log-level")
    command_line.log_level = value;
  else if (option == "--log-format")
    command_line.log_format = value;
  else
    return false;
  return true;
}

// Parses options from argv[2]; stops at the first argument that is not an option and returns
// its index in `rest` (admin's command). With `others`, arguments that are not Depot's options
// go there instead (test's, for busted).
depot::CommandLine parse_options(int argc, char** argv, int* rest = nullptr,
                                 std::vector<std::string>* others = nullptr) {
  depot::CommandLine command_line;
  for (int i = 2; i < argc; ++i) {
    std::string option = argv[i];
    if (others != nullptr) {
      if (i + 1 < argc && set_option(command_line, option, argv[i + 1])) {
        ++i;
      } else {
        others->push_back(option);
      }
      continue;
    }
    if (rest != nullptr && option.rfind("--", 0) != 0) {
      *rest = i;
      return command_line;
    }
    if (i + 1 >= argc) throw depot::ConfigError(option + " needs a value (see depot help)");
    if (!set_option(command_line, option, argv[++i])) {
      throw depot::ConfigError("unknown option " + option + " (see depot help)");
    }
  }
  if (rest != nullptr) *rest = argc;
  return command_line;
}

// How long after drain_timeout a stopping server may take before the process exits regardless.
constexpr std::chrono::milliseconds kStopGrace{3000};

int serve(int argc, char** argv) {
  depot::apply_dotenv(".env");
  depot::Options options = depot::load_options(parse_options(argc, argv));

  // Reactor threads inherit this mask, so only the main thread's sigwait sees these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a log line written to a closed stderr pipe must not stop the server

  depot::Server server(options);
  server.start();
  for (;;) {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    if (signal_number == SIGHUP) {
      depot::log::info("reload requested", {{"signal", "SIGHUP"}});
      server.reload();
      continue;
    }
    depot::log::info("stopping", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    // stop() waits for the workers, and a worker stuck in C code (a regex-like string.find that
    // backtracks for hours, say) never answers: the process still exits, a little after the drain.
    std::thread([drain = options.drain_timeout] {
      std::this_thread::sleep_for(drain + kStopGrace);
      depot::log::error("a worker did not stop after the drain; exiting anyway",
                        {{"drain_timeout_ms", drain.count()}, {"grace_ms", kStopGrace.count()}});
      _exit(1);
    }).detach();
    server.stop();
    return 0;
  }
}

int check(int argc, char** argv) {
  depot::apply_dotenv(".env");
  return depot::check_config(parse_options(argc, argv), std::cout);
}

int test(int argc, char** argv) {
  depot::apply_dotenv(".env");
  std::vector<std::string> arguments;
  depot::CommandLine command_line = parse_options(argc, argv, nullptr, &arguments);
  return depot::run_specs(command_line, arguments);
}

void print_version() {
  curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
  std::cout << "depot " << DEPOT_VERSION << "\n"
            << "  " << LUAJIT_VERSION << ", " << MDB_VERSION_STRING << ", libsodium "
            << sodium_version_string() << ", libcurl " << curl->version << ", nlohmann_json "
            << NLOHMANN_JSON_VERSION_MAJOR << "." << NLOHMANN_JSON_VERSION_MINOR << "."
            << NLOHMANN_JSON_VERSION_PATCH << "\n";
}

int admin(int argc, char** argv) {
  depot::apply_dotenv(".env");
  int rest = argc;
  depot::Options options = depot::load_options(parse_options(argc, argv, &rest));
  if (rest >= argc) throw depot::ConfigError("admin needs a command (see depot help)");
  std::string command = argv[rest];
  std::vector<std::string> arguments(argv + rest + 1, argv + argc);
  depot::Runtime runtime(nullptr, depot::make_generation(options, 0));
  int ran = runtime.run_command(command, arguments);
  if (ran == 0) throw depot::ConfigError("no service defines the admin command '" + command + "'");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "help";
  try {
    if (command == "serve") return serve(argc, argv);
    if (command == "check") return check(argc, argv);
    if (command == "admin") return admin(argc, argv);
    if (command == "test") return test(argc, argv);
    if (command == "version" || command == "--version") {
      print_version();
      return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << "depot: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const depot::ConfigError& e) {
    depot::log::error("configuration error", {{"error", e.what()}});
    return 2;
  } catch (const std::exception& e) {
    depot::log::error("fatal", {{"error", e.what()}});
    return 1;
  }
}
