// One version of the route scripts and the configuration they run with. Every reload builds a
// new generation; each worker runs it in a fresh Lua state (a Runtime) while requests that
// started on the previous generation finish there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/options.hpp"

namespace depot {

struct Generation {
  uint64_t number = 0;
  std::vector<ServiceSpec> services;
  std::filesystem::path scripts_dir;
  std::filesystem::path data_dir;
  nlohmann::json config;
  Limits limits;
};

// The generation `number` of the scripts and settings in `options`.
std::shared_ptr<Generation> make_generation(const Options& options, uint64_t number);

}  // namespace depot
