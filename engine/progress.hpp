// Progress of a long admin command (`depot admin expire-all`) on stderr, for the operator who
// runs it: on a terminal one line redrawn in place (at most ten times a second, ended by a newline
// when the work is done); otherwise plain lines, one per tenth of the work (or per second when the
// total is unknown) and one at the end, so that a log file or a CI transcript shows it advancing.
// Not for a serving runtime: nobody watches a server's stderr for progress (depot.progress does
// nothing there). Not thread-safe: an admin command runs on one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace depot::progress {

// `done` of `total` units of `label` ("expiry: entries") are done; total unknown: nullopt.
void report(const std::string& label, uint64_t done, std::optional<uint64_t> total);

}  // namespace depot::progress
