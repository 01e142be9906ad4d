// What makes a file a spec for `depot test` rather than a route script, in one place: the reload
// watcher ignores specs, the service loader refuses one as a service's script, and `depot test`
// runs them (its busted pattern is kSpecPattern).
#pragma once

#include <string_view>

namespace depot {

inline constexpr std::string_view kSpecSuffix = "_spec.lua";
inline constexpr std::string_view kSpecDirectory = "spec";  // scripts/<service>/spec/
inline constexpr const char* kSpecPattern = "_spec%.lua$";  // a Lua pattern on file names

// `name` is a file or directory name (no slashes).
inline bool is_spec_name(std::string_view name) {
  return name == kSpecDirectory || (name.size() >= kSpecSuffix.size() &&
                                    name.substr(name.size() - kSpecSuffix.size()) == kSpecSuffix);
}

}  // namespace depot
