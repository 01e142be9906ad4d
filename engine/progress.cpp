// Admin command progress on stderr (see progress.hpp).
#include "engine/progress.hpp"

#include <unistd.h>

#include <chrono>

#include "engine/log.hpp"

namespace depot::progress {
namespace {

using Clock = std::chrono::steady_clock;

struct State {
  std::string label;
  Clock::time_point shown;
  uint64_t tenth = 0;      // the last tenth of the total a plain line was written for
  bool line_open = false;  // a terminal line is drawn without its newline yet
};
State state;

std::string describe(const std::string& label, uint64_t done, std::optional<uint64_t> total) {
  std::string text = label + ": " + std::to_string(done);
  if (total) {
    text += "/" + std::to_string(*total);
    if (*total > 0) text += " (" + std::to_string(done * 100 / *total) + "%)";
  }
  return text;
}

}  // namespace

void report(const std::string& label, uint64_t done, std::optional<uint64_t> total) {
  static const bool terminal = isatty(STDERR_FILENO) == 1;
  Clock::time_point now = Clock::now();
  bool fresh = label != state.label;
  if (fresh) {
    if (state.line_open) log::write_raw("\n");
    state = State{label, now - std::chrono::hours(1), 0, false};
  }
  bool finished = total && done >= *total;
  std::string text = describe(label, done, total);
  if (terminal) {
    if (!finished && now - state.shown < std::chrono::milliseconds(100)) return;
    state.shown = now;
    log::write_raw("\r\033[K" + text + (finished ? "\n" : ""));
    state.line_open = !finished;
    if (finished) state.label.clear();
    return;
  }
  uint64_t tenth = total && *total > 0 ? done * 10 / *total : 0;
  bool due = finished || fresh ||
             (total ? tenth > state.tenth : now - state.shown >= std::chrono::seconds(1));
  if (!due) return;
  state.shown = now;
  state.tenth = tenth;
  log::write_raw(text + "\n");
  if (finished) state.label.clear();
}

}  // namespace depot::progress
