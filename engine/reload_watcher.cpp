// inotify watcher for hot reload (see reload_watcher.hpp).
#include "engine/reload_watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "engine/log.hpp"
#include "engine/spec_files.hpp"

namespace depot {
namespace {
constexpr int kSettleMilliseconds = 150;
constexpr uint32_t kEvents =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB;

// Whether the events in `buffer` touch anything but specs: editing a spec (`depot test`) must not
// reload the server.
bool touches_scripts(const char* buffer, ssize_t length) {
  bool scripts = false;
  for (ssize_t offset = 0; offset < length;) {
    const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
    if (event->len == 0 || !is_spec_name(event->name)) scripts = true;
    offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
  }
  return scripts;
}
}  // namespace

ReloadWatcher::ReloadWatcher(std::vector<std::filesystem::path> roots,
                             std::function<void()> on_change)
    : roots_(std::move(roots)),
      on_change_(std::move(on_change)),
      inotify_fd_(inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
      stop_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!inotify_fd_.valid() || !stop_fd_.valid())
    throw std::runtime_error("cannot create the script watcher");
  watch_tree();
  thread_ = std::thread([this] { run(); });
}

ReloadWatcher::~ReloadWatcher() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_.get(), &one, sizeof one);
  thread_.join();
}

// Watches every directory under the roots; re-run after changes so new directories are seen
// (watching one twice just returns the existing descriptor).
void ReloadWatcher::watch_tree() {
  for (const auto& root : roots_) {
    std::error_code error;
    std::filesystem::path directory =
        std::filesystem::is_directory(root, error) ? root : root.parent_path();
    inotify_add_watch(inotify_fd_.get(), directory.c_str(), kEvents);
    for (auto it = std::filesystem::recursive_directory_iterator(directory, error);
         !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
      if (!it->is_directory(error)) continue;
      // npm's trees (the API pages' assets, scripts/lib/openapi) hold hundreds of directories
      // and no script: watching them would only spend inotify watches. Specs are no scripts.
      if (it->path().filename() == "node_modules" || is_spec_name(it->path().filename().native())) {
        it.disable_recursion_pending();
        continue;
      }
      inotify_add_watch(inotify_fd_.get(), it->path().c_str(), kEvents);
    }
  }
}

void ReloadWatcher::run() {
  alignas(inotify_event) char buffer[16 * 1024];
  bool changed = false;
  for (;;) {
    pollfd fds[2] = {{inotify_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    int ready = ::poll(fds, 2, changed ? kSettleMilliseconds : -1);
    if (ready < 0) continue;
    if (fds[1].revents) return;
    if (ready == 0) {  // quiet for a while after a change: reload once
      changed = false;
      watch_tree();
      try {
        on_change_();
      } catch (const std::exception& e) {
        log::error("reload failed", {{"error", e.what()}});
      }
      continue;
    }
    for (ssize_t length; (length = ::read(inotify_fd_.get(), buffer, sizeof buffer)) > 0;) {
      if (touches_scripts(buffer, length)) changed = true;
    }
  }
}

}  // namespace depot
