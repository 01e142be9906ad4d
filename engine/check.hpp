// `depot check`: everything `depot serve` would refuse or warn about at start, found without
// serving — like `nginx -t`. It reads the config (unknown keys by their JSON path, wrong types),
// loads every service script in an offline runtime (load errors of each service, route
// conflicts between them) against a scratch data dir, so that checking never touches the real
// data, and reports services a missing setting leaves unmounted and settings no script reads.
// Never starts a listener and never runs on_start hooks.
#pragma once

#include <ostream>

#include "engine/config.hpp"

namespace depot {

// Writes one line per finding ("error: ..." / "warning: ...") and a verdict to `out`; returns
// 0 when the config would start (warnings allowed), 1 otherwise.
int check_config(const CommandLine& command_line, std::ostream& out);

}  // namespace depot
