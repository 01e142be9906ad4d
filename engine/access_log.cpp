// Per-request log lines, buffered per thread (see access_log.hpp).
#include "engine/access_log.hpp"

#include <cmath>
#include <cstdio>

#include "engine/log.hpp"

namespace depot::access_log {
namespace {
thread_local std::string buffer;

void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte >= 0x7f) {
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out.append(escaped);
    } else {
      out.push_back(c);
    }
  }
}
}  // namespace

void write(const Exchange& exchange, uint64_t bytes, Clock::time_point now, const char* note) {
  if (!log::enabled(log::Level::info)) return;
  double ms = std::chrono::duration<double, std::milli>(now - exchange.started()).count();
  std::string& out = buffer;
  if (log::text_format()) {  // a person reads these: no need for the JSON fast path below
    nlohmann::ordered_json fields = {{"request_id", exchange.id()},
                                     {"method", exchange.head().method},
                                     {"path", exchange.head().path},
                                     {"status", exchange.status()},
                                     {"bytes", bytes},
                                     {"ms", std::round(ms * 1000) / 1000},
                                     {"remote", exchange.remote_address()}};
    if (note) fields["note"] = note;
    out.append(log::text_line(log::Level::info, "request", fields)).push_back('\n');
    if (out.size() > 64 * 1024) flush();
    return;
  }
  out.append("{\"ts\":\"")
      .append(log::timestamp())
      .append("\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"");
  append_escaped(out, exchange.id());
  out.append("\",\"method\":\"");
  append_escaped(out, exchange.head().method);
  out.append("\",\"path\":\"");
  append_escaped(out, exchange.head().path);
  char numbers[128];
  snprintf(numbers, sizeof numbers, "\",\"status\":%d,\"bytes\":%llu,\"ms\":%.3f,\"remote\":\"",
           exchange.status(), static_cast<unsigned long long>(bytes), ms);
  out.append(numbers);
  append_escaped(out, exchange.remote_address());
  out.push_back('"');
  if (note) {
    out.append(",\"note\":\"");
    append_escaped(out, note);
    out.push_back('"');
  }
  out.append("}\n");
  if (out.size() > 64 * 1024) flush();
}

void flush() {
  if (buffer.empty()) return;
  log::write_raw(buffer);
  buffer.clear();
}

}  // namespace depot::access_log
