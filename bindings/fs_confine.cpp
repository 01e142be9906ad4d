// Path confinement under a root directory (see fs_confine.hpp).
#include "bindings/fs_confine.hpp"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace depot::disk {
namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's ELOOP limit

// A refusal; caught once, in confine().
struct Refused {
  std::string reason;
};

std::vector<std::string> split_parts(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = end + 1;
  }
  return parts;
}

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string join(const std::string& directory, const std::string& name) {
  return directory == "/" ? "/" + name : directory + "/" + name;
}

// Walks paths part by part like realpath, but keeps a not-yet-existing tail and checks every
// symlink it follows against the root.
class Walker {
 public:
  explicit Walker(std::string root) : root_(std::move(root)) {}

  bool inside(const std::string& path) const {
    if (root_ == "/") return true;
    return path == root_ ||
           (path.size() > root_.size() && path.compare(0, root_.size(), root_) == 0 &&
            path[root_.size()] == '/');
  }

  // Walks `relative` from `base` (absolute, resolved, existing if `exists`). The user's path is
  // walked with `confined` set: its ".." may not leave the root and its last part keeps its name
  // when it is a symlink. Symlink targets are walked unconfined and checked once resolved.
  std::string walk(std::string current, const std::string& relative, bool confined, bool& exists) {
    std::vector<std::string> parts = split_parts(relative);
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& part = parts[i];
      if (part == "..") {
        if (!exists) throw Refused{"'..' after a part that does not exist"};
        if (confined && current == root_) throw Refused{"escapes the root"};
        current = parent_of(current);
        continue;
      }
      std::string next = join(current, part);
      if (!exists) {
        current = std::move(next);
        continue;
      }
      struct stat status;
      if (::lstat(next.c_str(), &status) != 0) {
        if (errno != ENOENT) throw Refused{part + ": " + strerror(errno)};
        exists = false;
        current = std::move(next);
        continue;
      }
      if (!S_ISLNK(status.st_mode)) {
        current = std::move(next);
        continue;
      }
      bool target_exists = true;
      std::string target = follow(next, current, target_exists);
      if (!inside(target)) throw Refused{part + ": symlink points outside the root"};
      exists = target_exists;
      current = confined && i + 1 == parts.size() ? std::move(next) : std::move(target);
    }
    return current;
  }

 private:
  // Resolves the symlink `link` found in directory `directory`.
  std::string follow(const std::string& link, const std::string& directory, bool& exists) {
    if (++symlinks_followed_ > kMaxSymlinks) throw Refused{"too many levels of symbolic links"};
    std::vector<char> target(PATH_MAX + 1);
    ssize_t size = ::readlink(link.c_str(), target.data(), target.size() - 1);
    if (size < 0) throw Refused{link + ": " + strerror(errno)};
    std::string text(target.data(), static_cast<size_t>(size));
    if (text.empty()) throw Refused{link + ": empty symlink"};
    return walk(text[0] == '/' ? "/" : directory, text, false, exists);
  }

  std::string root_;
  int symlinks_followed_ = 0;
};

std::string resolve_root(const std::string& root) {
  std::unique_ptr<char, decltype(&free)> resolved(::realpath(root.c_str(), nullptr), &free);
  if (!resolved) throw Refused{"root " + root + ": " + strerror(errno)};
  struct stat status;
  if (::stat(resolved.get(), &status) != 0 || !S_ISDIR(status.st_mode)) {
    throw Refused{"root " + root + ": not a directory"};
  }
  return resolved.get();
}

}  // namespace

Confined confine(const std::string& root, const std::string& user_path) {
  try {
    if (user_path.empty()) throw Refused{"empty path (use \".\" for the root itself)"};
    if (user_path.find('\0') != std::string::npos) throw Refused{"path contains a NUL byte"};
    if (user_path.size() > PATH_MAX) throw Refused{"path too long"};
    if (user_path[0] == '/') throw Refused{"absolute paths are not allowed"};
    if (root.empty() || root.find('\0') != std::string::npos) throw Refused{"invalid root"};
    std::string resolved_root = resolve_root(root);
    Walker walker(resolved_root);
    bool exists = true;
    std::string path = walker.walk(resolved_root, user_path, true, exists);
    if (!walker.inside(path)) throw Refused{"escapes the root"};  // unreachable; kept as a backstop
    return {path, ""};
  } catch (const Refused& refused) {
    return {"", refused.reason};
  }
}

}  // namespace depot::disk
