// The keys a config file may hold, in one table (config_keys.cpp), and the check that names every
// key outside it by its JSON path. A new engine setting (or a whole section, such as `metrics`)
// is one line in that table; a service's own `config` section is open (the service reads it).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace depot {

// The paths of the keys in `document` that Depot does not know, sorted by key at each level, e.g.
// "limits.max_body_byte", "services[2].mout".
std::vector<std::string> unknown_config_keys(const nlohmann::json& document);

// "unknown config keys: limits.max_body_byte, services[2].mout (...)": the message `depot serve`
// refuses to start with and `depot check` prints. `unknown` is not empty.
std::string unknown_config_keys_message(const std::vector<std::string>& unknown);

}  // namespace depot
