// `depot test [PATHS...]`: runs busted specs (`*_spec.lua`; a path is a file or a directory
// searched recursively; default: every spec under the scripts dir, which holds the shipped
// services' specs) inside Depot's runtime. The specs run in one offline Lua state with the same
// modules and package path route scripts have (kv, json, crypto, the scripts' own modules), plus
// `depot.spec`, which starts embedded servers for them (engine/lua/spec_helpers.lua). Busted's
// own options (-o TAP, --filter, ...) pass through. Exit status as busted's: 0 when every spec
// passed, 1 otherwise (also when busted or a spec file cannot be loaded).
#pragma once

#include <string>
#include <vector>

#include "engine/config.hpp"

namespace depot {

// `arguments` are what follows `depot test` once Depot's own options are taken out.
int run_specs(const CommandLine& command_line, const std::vector<std::string>& arguments);

}  // namespace depot
