// Watches the script directories with inotify and calls back once edits settle (editors write
// files in several steps: save, rename, chmod). Runs its own thread; never touches Lua.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "engine/unique_fd.hpp"

namespace depot {

class ReloadWatcher {
 public:
  ReloadWatcher(std::vector<std::filesystem::path> roots, std::function<void()> on_change);
  ~ReloadWatcher();  // stops and joins
  ReloadWatcher(const ReloadWatcher&) = delete;
  ReloadWatcher& operator=(const ReloadWatcher&) = delete;

 private:
  void run();
  void watch_tree();

  std::vector<std::filesystem::path> roots_;
  std::function<void()> on_change_;
  UniqueFd inotify_fd_;
  UniqueFd stop_fd_;
  std::thread thread_;
};

}  // namespace depot
