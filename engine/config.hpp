// Builds Options for the `depot` binary. Precedence, lowest first: built-in defaults, the config
// file (JSON), the environment (after applying ./.env, which never overrides real variables),
// the command line.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/options.hpp"

namespace depot {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CommandLine {
  std::optional<std::string> config_file;
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<std::string> data_dir;
  std::optional<std::string> scripts_dir;
  std::optional<int> threads;
  std::optional<std::string> log_level;
  std::optional<std::string> log_format;
};

// Sets variables from a .env file (KEY=VALUE lines, # comments, optional quotes and `export`)
// that are not already set. A missing file is not an error.
void apply_dotenv(const std::string& path);

// The config file the command line names: --config, else DEPOT_CONFIG, else config/depot.json.
std::string config_file_path(const CommandLine& command_line);

// Reads the settings of a config document (the file's JSON object) into `options`, over what it
// holds already; throws ConfigError naming a setting of the wrong type. Unknown keys are not
// checked here (see config_keys.hpp). Embedders with a document of their own use it (depot test).
void read_config_document(const nlohmann::json& document, Options& options);

// Also sets the log level and format. Throws ConfigError with a message naming the setting, and
// for keys of the config file Depot does not know (config_keys.hpp) — unless `unknown_keys` is
// given: then their paths are stored there (for `depot check`, which reports everything).
Options load_options(const CommandLine& command_line,
                     std::vector<std::string>* unknown_keys = nullptr);

}  // namespace depot
