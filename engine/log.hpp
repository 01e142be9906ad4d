// Structured logging: one line per event on stderr, with a level: a JSON object (the default
// when stderr is not a terminal, and always into a test sink), or `ts LEVEL message key=value`
// text for a person at a terminal (--log-format).
// Thread-safe; each line is written with a single write(2) so lines from threads never interleave.
// Never pass secrets (tokens, Authorization values, passwords) as fields: nothing here redacts
// them.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace depot::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
Level level();
// Parses "debug" / "info" / "warn" / "error"; throws std::invalid_argument otherwise.
Level parse_level(std::string_view name);
std::string_view level_name(Level level);

enum class Format { automatic, json, text };
void set_format(Format format);
// Parses "json" / "text" / "auto"; throws std::invalid_argument otherwise.
Format parse_format(std::string_view name);

// Captures log lines for tests instead of writing them to stderr (nullptr restores stderr).
using Sink = void (*)(const std::string& line);
void set_sink(Sink sink);

bool enabled(Level level);
// The current UTC time as the "ts" field prints it: 2026-11-23T04:30:00.123Z.
std::string timestamp();
// Writes complete, already formatted lines (each ending in '\n') to the sink or stderr.
void write_raw(std::string_view lines);
void write(Level level, std::string_view message, nlohmann::json fields = nlohmann::json::object());
// Whether lines are written as text (for a person at a terminal) rather than JSON.
bool text_format();
// One text-format line without its '\n' (what write() emits in text format).
// Fields in their order (write() passes its fields sorted by key, as nlohmann::json keeps them).
std::string text_line(Level level, std::string_view message, const nlohmann::ordered_json& fields);

inline void debug(std::string_view m, nlohmann::json f = nlohmann::json::object()) {
  if (enabled(Level::debug)) write(Level::debug, m, std::move(f));
}
inline void info(std::string_view m, nlohmann::json f = nlohmann::json::object()) {
  if (enabled(Level::info)) write(Level::info, m, std::move(f));
}
inline void warn(std::string_view m, nlohmann::json f = nlohmann::json::object()) {
  if (enabled(Level::warn)) write(Level::warn, m, std::move(f));
}
inline void error(std::string_view m, nlohmann::json f = nlohmann::json::object()) {
  if (enabled(Level::error)) write(Level::error, m, std::move(f));
}

}  // namespace depot::log
