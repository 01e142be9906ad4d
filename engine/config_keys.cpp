// The known config keys (see config_keys.hpp).
#include "engine/config_keys.hpp"

#include <initializer_list>

namespace depot {
namespace {

// One level of the config document: its known keys, each with what its value holds.
struct Section;
struct Key {
  const char* name;
  const Section* inner = nullptr;  // an object whose keys are checked in turn; null: any value
  bool list = false;               // a list of such objects (services)
};
struct Section {
  std::initializer_list<Key> keys;
};

const Section kLimits{{{"max_header_bytes"},
                       {"max_header_count"},
                       {"max_body_bytes"},
                       {"header_timeout"},
                       {"body_timeout"},
                       {"keepalive_timeout"},
                       {"send_timeout"},
                       {"request_deadline"},
                       {"cpu_slice"},
                       {"lua_memory"},
                       {"instruction_budget"},
                       {"max_connections"}}};
const Section kKv{{{"map_size"}}};
const Section kMetrics{{{"enabled"}, {"listen"}}};
// Where shared state lives: "kv" is a postgres:// URL (absent: LMDB in the data dir); the others
// say where the services' file bytes live (bindings/blob_settings.cpp reads them).
const Section kStorage{{{"kv"},
                        {"blobs"},
                        {"s3_endpoint"},
                        {"s3_addressing"},
                        {"blob_downloads"},
                        {"blob_redirect_seconds"}}};
// `config` is the service's own section: open, its script reads it (`depot check` warns about
// keys no script read).
const Section kService{{{"name"}, {"script"}, {"mount"}, {"config"}, {"jit"}, {"enabled"}}};
const Section kDocument{{{"host"},
                         {"port"},
                         {"threads"},
                         {"data_dir"},
                         {"scripts_dir"},
                         {"watch_scripts"},
                         {"drain_timeout"},
                         {"log_level"},
                         {"log_format"},
                         {"limits", &kLimits},
                         {"kv", &kKv},
                         {"storage", &kStorage},
                         {"metrics", &kMetrics},
                         {"services", &kService, true}}};

void collect(const nlohmann::json& object, const Section& section, const std::string& path,
             std::vector<std::string>& unknown) {
  for (const auto& [name, value] : object.items()) {
    const Key* known = nullptr;
    for (const Key& key : section.keys) {
      if (name == key.name) known = &key;
    }
    std::string here = path.empty() ? name : path + "." + name;
    if (known == nullptr) {
      unknown.push_back(here);
    } else if (known->inner != nullptr && known->list && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        if (value[i].is_object())
          collect(value[i], *known->inner, here + "[" + std::to_string(i) + "]", unknown);
      }
    } else if (known->inner != nullptr && value.is_object()) {
      collect(value, *known->inner, here, unknown);
    }
  }
}

}  // namespace

std::vector<std::string> unknown_config_keys(const nlohmann::json& document) {
  std::vector<std::string> unknown;
  if (document.is_object()) collect(document, kDocument, "", unknown);
  return unknown;
}

std::string unknown_config_keys_message(const std::vector<std::string>& unknown) {
  std::string message = unknown.size() == 1 ? "unknown config key: " : "unknown config keys: ";
  for (size_t i = 0; i < unknown.size(); ++i) message += (i ? ", " : "") + unknown[i];
  return message + " (the keys are listed in README.md#configuration)";
}

}  // namespace depot
