// A fresh private directory under the system's temporary directory, removed with everything in it
// when the object goes away: the data dir of `depot check`'s runtimes (a check must leave the
// server's data as it found it) and of the servers a `depot test` spec starts.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace depot {

struct ScratchDir {
  std::filesystem::path path;
  // `prefix` names the directory for whoever finds it in /tmp: "depot-check-" → depot-check-a1B2c3.
  explicit ScratchDir(const std::string& prefix) {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a scratch dir in " + pattern);
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

}  // namespace depot
