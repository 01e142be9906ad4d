// Builds Options for the `depot` binary. Precedence, lowest first: built-in defaults, the config
// file (JSON), the environment (after applying ./.env, which never overrides real variables),
// the command line.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

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
};

// Sets variables from a .env file (KEY=VALUE lines, # comments, optional quotes and `export`)
// that are not already set. A missing file is not an error.
void apply_dotenv(const std::string& path);

// Also sets the log level. Throws ConfigError with a message naming the setting.
Options load_options(const CommandLine& command_line);

}  // namespace depot
