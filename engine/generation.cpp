// Building a generation from the server options (see generation.hpp).
#include "engine/generation.hpp"

namespace depot {

std::shared_ptr<Generation> make_generation(const Options& options, uint64_t number) {
  auto generation = std::make_shared<Generation>();
  generation->number = number;
  generation->services = options.services;
  generation->scripts_dir = std::filesystem::absolute(options.scripts_dir);
  generation->data_dir = std::filesystem::absolute(options.data_dir);
  generation->config = options.config;
  generation->limits = options.limits;
  return generation;
}

}  // namespace depot
