// `depot check` (see check.hpp).
#include "engine/check.hpp"

#include "engine/config_keys.hpp"
#include "engine/generation.hpp"
#include "engine/log.hpp"
#include "engine/runtime.hpp"
#include "engine/scratch_dir.hpp"

namespace depot {
namespace {

struct Findings {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// "services[2]" for the service named `name` in the config document (its position there).
std::string service_path(const nlohmann::json& document, const std::string& name) {
  const nlohmann::json* list =
      document.is_object() && document.contains("services") ? &document["services"] : nullptr;
  if (list != nullptr && list->is_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const nlohmann::json& entry = (*list)[i];
      if (entry.is_object() && entry.value("name", "") == name)
        return "services[" + std::to_string(i) + "]";
    }
  }
  return "services." + name;
}

// Loads every service together; when that fails, each one alone, so that every script with an
// error is named (not only the first), and a failure no single script has is a conflict.
void load_scripts(const Options& options, Findings& findings) {
  std::shared_ptr<Generation> generation = make_generation(options, 0);
  std::unique_ptr<Runtime> runtime;
  try {
    runtime = std::make_unique<Runtime>(nullptr, generation);
  } catch (const std::exception& together) {
    size_t before = findings.errors.size();
    for (const ServiceSpec& spec : options.services) {
      auto alone = std::make_shared<Generation>(*generation);
      alone->services = {spec};
      try {
        Runtime single(nullptr, alone);
      } catch (const std::exception& e) {
        findings.errors.push_back(e.what());
      }
    }
    if (findings.errors.size() == before) findings.errors.push_back(together.what());
    return;
  }
  for (const Runtime::LoadNote& note : runtime->unmounted()) {
    findings.warnings.push_back("service " + note.service + " will not be mounted: " + note.text);
  }
  for (const Runtime::LoadNote& note : runtime->unread_settings()) {
    findings.warnings.push_back(service_path(options.config, note.service) + ".config." +
                                note.text + ": the " + note.service +
                                " service never reads this setting (misspelt?)");
  }
}

}  // namespace

int check_config(const CommandLine& command_line, std::ostream& out) {
  std::string config_file = config_file_path(command_line);
  Findings findings;
  std::vector<std::string> unknown;
  Options options;
  try {
    options = load_options(command_line, &unknown);
  } catch (const ConfigError& e) {
    findings.errors.push_back(e.what());
  }
  if (!unknown.empty())
    findings.errors.push_back("config file " + config_file + ": " +
                              unknown_config_keys_message(unknown));
  // The scripts' own log lines would repeat what the findings say; errors still show.
  if (!command_line.log_level) log::set_level(log::Level::error);
  if (findings.errors.empty()) {
    ScratchDir scratch("depot-check-");
    options.data_dir = scratch.path;
    load_scripts(options, findings);
  }
  for (const std::string& warning : findings.warnings) out << "warning: " << warning << "\n";
  for (const std::string& error : findings.errors) out << "error: " << error << "\n";
  if (!findings.errors.empty()) {
    out << "depot check: " << config_file << ": " << findings.errors.size()
        << (findings.errors.size() == 1 ? " error" : " errors")
        << "; depot serve would refuse it\n";
    return 1;
  }
  out << "depot check: " << config_file << ": ok (" << options.services.size() << " services";
  if (!findings.warnings.empty()) {
    out << ", " << findings.warnings.size()
        << (findings.warnings.size() == 1 ? " warning" : " warnings");
  }
  out << ")\n";
  return 0;
}

}  // namespace depot
