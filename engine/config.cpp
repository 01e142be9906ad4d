// Options from config file, environment, .env and command line (see config.hpp).
#include "engine/config.hpp"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "bindings/kv_backend.hpp"
#include "engine/config_keys.hpp"
#include "engine/log.hpp"
#include "engine/text.hpp"

namespace depot {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int parse_int(const std::string& text, const std::string& setting, int low, int high) {
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used != text.size() || value < low || value > high) throw std::out_of_range(text);
    return value;
  } catch (const std::exception&) {
    throw ConfigError(setting + " must be a whole number from " + std::to_string(low) + " to " +
                      std::to_string(high) + ", got '" + text + "'");
  }
}

template <typename T>
T json_get(const nlohmann::json& object, const char* key, T fallback, const std::string& where) {
  if (!object.contains(key)) return fallback;
  try {
    return object.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(where + "." + key + " has the wrong type");
  }
}

std::chrono::milliseconds seconds_setting(const nlohmann::json& limits, const char* key,
                                          std::chrono::milliseconds fallback) {
  double seconds = json_get<double>(limits, key, fallback.count() / 1000.0, "limits");
  if (seconds < 0) throw ConfigError(std::string("limits.") + key + " must not be negative");
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// A size in bytes: a whole number, or a string with a unit ("512MiB", "2 GiB", "64KiB", "1000").
size_t size_setting(const nlohmann::json& limits, const char* key, size_t fallback) {
  if (!limits.contains(key)) return fallback;
  const nlohmann::json& value = limits[key];
  std::string setting = std::string("limits.") + key;
  if (value.is_number_unsigned()) return value.get<size_t>();
  if (!value.is_string())
    throw ConfigError(setting + " must be a number of bytes or a string like \"512MiB\"");
  const std::string text = value.get<std::string>();
  size_t used = 0;
  unsigned long long number = 0;
  try {
    if (text.empty() || text[0] < '0' || text[0] > '9') throw std::invalid_argument(text);
    number = std::stoull(text, &used);
  } catch (const std::exception&) {
    throw ConfigError(setting + " must start with a whole number, got '" + text + "'");
  }
  std::string unit(trim(text.substr(used), kWhitespace));
  static const std::pair<const char*, int> kUnits[] = {
      {"", 0}, {"B", 0}, {"KiB", 10}, {"K", 10}, {"MiB", 20}, {"M", 20}, {"GiB", 30}, {"G", 30}};
  for (const auto& [name, shift] : kUnits) {
    if (unit != name) continue;
    if (number > (std::numeric_limits<size_t>::max() >> shift))
      throw ConfigError(setting + " is too large: " + text);
    return static_cast<size_t>(number) << shift;
  }
  throw ConfigError(setting + ": unknown unit '" + unit + "' (use B, KiB, MiB or GiB)");
}

void read_limits(const nlohmann::json& document, Limits& limits) {
  if (!document.contains("limits")) return;
  const nlohmann::json& section = document["limits"];
  if (!section.is_object()) throw ConfigError("limits must be an object");
  limits.max_header_bytes =
      json_get<size_t>(section, "max_header_bytes", limits.max_header_bytes, "limits");
  limits.max_header_count =
      json_get<size_t>(section, "max_header_count", limits.max_header_count, "limits");
  limits.max_body_bytes =
      json_get<size_t>(section, "max_body_bytes", limits.max_body_bytes, "limits");
  limits.header_timeout = seconds_setting(section, "header_timeout", limits.header_timeout);
  limits.body_timeout = seconds_setting(section, "body_timeout", limits.body_timeout);
  limits.keepalive_timeout =
      seconds_setting(section, "keepalive_timeout", limits.keepalive_timeout);
  limits.send_timeout = seconds_setting(section, "send_timeout", limits.send_timeout);
  limits.request_deadline = seconds_setting(section, "request_deadline", limits.request_deadline);
  limits.cpu_slice = seconds_setting(section, "cpu_slice", limits.cpu_slice);
  limits.lua_memory = size_setting(section, "lua_memory", limits.lua_memory);
  limits.instruction_budget =
      json_get<uint64_t>(section, "instruction_budget", limits.instruction_budget, "limits");
  limits.max_connections =
      json_get<size_t>(section, "max_connections", limits.max_connections, "limits");
}

void read_services(const nlohmann::json& document, std::vector<ServiceSpec>& services) {
  if (!document.contains("services")) return;
  const nlohmann::json& list = document["services"];
  if (!list.is_array()) throw ConfigError("services must be a list");
  for (const nlohmann::json& entry : list) {
    if (!entry.is_object() || !entry.contains("name"))
      throw ConfigError("each service needs a name");
    ServiceSpec spec;
    spec.name = json_get<std::string>(entry, "name", "", "services[]");
    if (json_get<bool>(entry, "enabled", true, "services." + spec.name) == false) continue;
    spec.script = json_get<std::string>(entry, "script", spec.name, "services." + spec.name);
    if (entry.contains("mount")) {
      const nlohmann::json& mount = entry["mount"];
      spec.mounts = mount.is_array() ? mount.get<std::vector<std::string>>()
                                     : std::vector<std::string>{mount.get<std::string>()};
    }
    if (entry.contains("config")) spec.config = entry["config"];
    spec.jit = json_get<bool>(entry, "jit", spec.jit, "services." + spec.name);
    services.push_back(std::move(spec));
  }
}

void read_metrics(const nlohmann::json& document, MetricsOptions& metrics) {
  if (!document.contains("metrics")) return;
  const nlohmann::json& section = document["metrics"];
  if (!section.is_object()) throw ConfigError("metrics must be an object");
  metrics.enabled = json_get<bool>(section, "enabled", metrics.enabled, "metrics");
  metrics.listen = json_get<std::string>(section, "listen", metrics.listen, "metrics");
}

// storage.kv: the kv store's URL, read where kv opens (bindings/kv_backend.cpp); refused here,
// before any script loads. The URL may hold a password: no message repeats it.
void read_storage(const nlohmann::json& document) {
  if (document.contains("storage")) {
    const nlohmann::json& storage = document["storage"];
    if (!storage.is_object()) throw ConfigError("storage must be an object");
    if (storage.contains("kv") && !storage["kv"].is_string()) {
      throw ConfigError("storage.kv must be a string (a postgres:// URL)");
    }
  }
  std::string url = kv_url(document);
  if (!url.empty() && !is_postgres_url(url)) {
    throw ConfigError("storage.kv (or DEPOT_KV_URL) must be a postgres:// or postgresql:// URL");
  }
}

}  // namespace

void apply_dotenv(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    line = std::string(trim(line, kWhitespace));
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("export ", 0) == 0) line = std::string(trim(line.substr(7), kWhitespace));
    size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    std::string name(trim(line.substr(0, equals), kWhitespace));
    std::string value(trim(line.substr(equals + 1), kWhitespace));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (!name.empty()) setenv(name.c_str(), value.c_str(), 0);
  }
}

void read_config_document(const nlohmann::json& document, Options& options) {
  options.host = json_get<std::string>(document, "host", options.host, "config");
  options.port = static_cast<uint16_t>(json_get<int>(document, "port", options.port, "config"));
  options.threads = json_get<size_t>(document, "threads", options.threads, "config");
  options.data_dir = json_get<std::string>(document, "data_dir", options.data_dir, "config");
  options.scripts_dir =
      json_get<std::string>(document, "scripts_dir", options.scripts_dir, "config");
  options.watch_scripts =
      json_get<bool>(document, "watch_scripts", options.watch_scripts, "config");
  options.drain_timeout = std::chrono::milliseconds(
      static_cast<int64_t>(json_get<double>(document, "drain_timeout",
                                            options.drain_timeout.count() / 1000.0, "config") *
                           1000));
  read_limits(document, options.limits);
  read_metrics(document, options.metrics);
  read_services(document, options.services);
  read_storage(document);
}

std::string config_file_path(const CommandLine& command_line) {
  return command_line.config_file.value_or(env("DEPOT_CONFIG").value_or("config/depot.json"));
}

Options load_options(const CommandLine& command_line, std::vector<std::string>* unknown_keys) {
  Options options;
  options.threads = std::max(1u, std::thread::hardware_concurrency());
  std::string config_file = config_file_path(command_line);
  std::ifstream file(config_file);
  if (!file) {
    if (command_line.config_file || env("DEPOT_CONFIG"))
      throw ConfigError("cannot read config file " + config_file);
  } else {
    try {
      options.config = nlohmann::json::parse(file, nullptr, true, true);  // comments allowed
    } catch (const nlohmann::json::parse_error& e) {
      throw ConfigError("config file " + config_file + ": " + e.what());
    }
    if (!options.config.is_object())
      throw ConfigError("config file " + config_file + " must hold a JSON object");
  }
  std::vector<std::string> unknown = unknown_config_keys(options.config);
  if (unknown_keys != nullptr) {
    *unknown_keys = unknown;
  } else if (!unknown.empty()) {
    throw ConfigError("config file " + config_file + ": " + unknown_config_keys_message(unknown));
  }
  read_config_document(options.config, options);
  const nlohmann::json& document = options.config;
  std::string log_level = json_get<std::string>(document, "log_level", "info", "config");
  std::string log_format = json_get<std::string>(document, "log_format", "auto", "config");

  if (auto value = env("DEPOT_HOST")) options.host = *value;
  if (auto value = env("DEPOT_PORT"))
    options.port = static_cast<uint16_t>(parse_int(*value, "DEPOT_PORT", 0, 65535));
  if (auto value = env("DEPOT_THREADS"))
    options.threads = static_cast<size_t>(parse_int(*value, "DEPOT_THREADS", 1, 256));
  if (auto value = env("DEPOT_DATA_DIR")) options.data_dir = *value;
  if (auto value = env("DEPOT_SCRIPTS")) options.scripts_dir = *value;
  if (auto value = env("DEPOT_LOG_LEVEL")) log_level = *value;
  if (auto value = env("DEPOT_LOG_FORMAT")) log_format = *value;

  if (command_line.host) options.host = *command_line.host;
  if (command_line.port)
    options.port =
        static_cast<uint16_t>(parse_int(std::to_string(*command_line.port), "--port", 0, 65535));
  if (command_line.threads)
    options.threads =
        static_cast<size_t>(parse_int(std::to_string(*command_line.threads), "--threads", 1, 256));
  if (command_line.data_dir) options.data_dir = *command_line.data_dir;
  if (command_line.scripts_dir) options.scripts_dir = *command_line.scripts_dir;
  if (command_line.log_level) log_level = *command_line.log_level;
  if (command_line.log_format) log_format = *command_line.log_format;
  try {
    log::set_format(log::parse_format(log_format));
    log::set_level(log::parse_level(log_level));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
  if (options.threads == 0) throw ConfigError("threads must be at least 1");
  return options;
}

}  // namespace depot
