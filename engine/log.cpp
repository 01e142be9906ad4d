// Structured logger: JSON lines or text lines (see log.hpp).
#include "engine/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace depot::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
std::atomic<Sink> g_sink{nullptr};
std::atomic<int> g_format{static_cast<int>(Format::automatic)};

bool stderr_is_terminal() {
  static const bool terminal = isatty(STDERR_FILENO) == 1;
  return terminal;
}

// A value as `key=value` shows it: strings bare unless they need quotes to stay one token.
std::string text_value(const nlohmann::ordered_json& value) {
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    bool bare = !text.empty() && text.find_first_of(" =\"\\\n\t\r") == std::string::npos;
    if (bare) return text;
  }
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

bool text_format() {
  auto format = static_cast<Format>(g_format.load(std::memory_order_relaxed));
  if (format == Format::automatic) return g_sink.load() == nullptr && stderr_is_terminal();
  return format == Format::text;
}

std::string text_line(Level level, std::string_view message, const nlohmann::ordered_json& fields) {
  std::string line = timestamp();
  line += ' ';
  std::string_view name = level_name(level);
  for (char c : name) line += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  line.append(6 - std::min<size_t>(name.size(), 5), ' ');
  line += message;
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) line += " " + key + "=" + text_value(value);
  }
  return line;
}

void set_format(Format format) {
  g_format = static_cast<int>(format);
}

Format parse_format(std::string_view name) {
  if (name == "json") return Format::json;
  if (name == "text") return Format::text;
  if (name == "auto") return Format::automatic;
  throw std::invalid_argument("unknown log format '" + std::string(name) + "' (json, text, auto)");
}

std::string timestamp() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm parts;
  gmtime_r(&tv.tv_sec, &parts);
  char buffer[40];
  size_t n = strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &parts);
  snprintf(buffer + n, sizeof buffer - n, ".%03ldZ", static_cast<long>(tv.tv_usec / 1000));
  return buffer;
}

void set_level(Level level) {
  g_level = static_cast<int>(level);
}
Level level() {
  return static_cast<Level>(g_level.load());
}
bool enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}
void set_sink(Sink sink) {
  g_sink = sink;
}

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn" || name == "warning") return Level::warn;
  if (name == "error") return Level::error;
  throw std::invalid_argument("unknown log level '" + std::string(name) +
                              "' (debug, info, warn, error)");
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "info";
}

void write(Level level, std::string_view message, nlohmann::json fields) {
  if (text_format()) {
    write_raw(text_line(level, message, nlohmann::ordered_json(fields)) + "\n");
    return;
  }
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = timestamp();
  line["level"] = level_name(level);
  line["msg"] = message;
  if (fields.is_object()) {
    for (auto& [key, value] : fields.items()) line[key] = std::move(value);
  }
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  write_raw(text);
}

void write_raw(std::string_view lines) {
  if (Sink sink = g_sink.load()) {
    size_t start = 0;
    while (start < lines.size()) {
      size_t end = lines.find('\n', start);
      if (end == std::string_view::npos) end = lines.size();
      sink(std::string(lines.substr(start, end - start)));
      start = end + 1;
    }
    return;
  }
  const char* data = lines.data();
  size_t left = lines.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n <= 0) return;
    data += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace depot::log
