// Blocking filesystem operations, free of Lua (see fs_operations.hpp).
#include "bindings/fs_operations.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace depot::disk {
namespace {

constexpr size_t kCopyBufferBytes = 256 * 1024;

struct CloseDirectory {
  void operator()(DIR* directory) const { ::closedir(directory); }
};
using DirectoryHandle = std::unique_ptr<DIR, CloseDirectory>;

UniqueFd open_or_throw(const std::string& path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw FsError(path, errno);
  return UniqueFd(fd);
}

struct stat stat_or_throw(const std::string& path, bool follow) {
  struct stat result;
  if ((follow ? ::stat(path.c_str(), &result) : ::lstat(path.c_str(), &result)) != 0) {
    throw FsError(path, errno);
  }
  return result;
}

// Names in the open directory, without "." and "..".
std::vector<std::string> read_names(DIR* directory, const std::string& path) {
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(directory)) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
      names.emplace_back(entry->d_name);
    }
    errno = 0;
  }
  if (errno != 0) throw FsError(path, errno);
  return names;
}

void close_or_throw(UniqueFd& fd, const std::string& path) {
  if (fd.reset() != 0) throw FsError(path, errno);
}

// Removes the entry `name` of the directory open as `parent_fd`, and everything under it. Opens
// each directory with O_NOFOLLOW and works relative to its fd, so a directory swapped for a symlink
// meanwhile is unlinked, never followed.
void remove_tree_at(int parent_fd, const char* name, const std::string& path) {
  if (::unlinkat(parent_fd, name, 0) == 0) return;
  if (errno != EISDIR && errno != EPERM) throw FsError(path, errno);
  int unlink_error = errno;
  UniqueFd fd(::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) throw FsError(path, errno == ENOTDIR ? unlink_error : errno);
  DirectoryHandle directory(::fdopendir(fd.get()));
  if (!directory) throw FsError(path, errno);
  fd.release();  // the DIR owns it now
  for (const std::string& child : read_names(directory.get(), path)) {
    remove_tree_at(::dirfd(directory.get()), child.c_str(), path + "/" + child);
  }
  directory.reset();
  if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0) throw FsError(path, errno);
}

// Copies the rest of `from` to `to`: copy_file_range (in-kernel, reflinks where the filesystem
// can), falling back to read/write where the kernel refuses (other filesystem, special files).
void copy_contents(int from, int to, const std::string& source, const std::string& destination) {
  for (;;) {
    ssize_t copied = ::copy_file_range(from, nullptr, to, nullptr, 1 << 30, 0);
    if (copied == 0) return;
    if (copied > 0) continue;
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
        errno == EBADF) {
      break;
    }
    throw FsError(destination, errno);
  }
  std::vector<char> buffer(kCopyBufferBytes);
  for (;;) {
    ssize_t got = ::read(from, buffer.data(), buffer.size());
    if (got == 0) return;
    if (got < 0) {
      if (errno == EINTR) continue;
      throw FsError(source, errno);
    }
    write_all(to, buffer.data(), static_cast<size_t>(got), destination);
  }
}

void copy_file(const std::string& source, const std::string& destination) {
  UniqueFd from = open_or_throw(source, O_RDONLY);
  struct stat status;
  if (::fstat(from.get(), &status) != 0) throw FsError(source, errno);
  if (S_ISDIR(status.st_mode)) {
    throw FsError(source, "is a directory (copy it with {recursive = true})");
  }
  UniqueFd to = open_or_throw(destination, O_WRONLY | O_CREAT, 0600);
  struct stat existing;
  if (::fstat(to.get(), &existing) != 0) throw FsError(destination, errno);
  if (existing.st_dev == status.st_dev && existing.st_ino == status.st_ino) {
    throw FsError(destination, "is the source file itself");  // truncating it would lose both
  }
  if (::ftruncate(to.get(), 0) != 0) throw FsError(destination, errno);
  copy_contents(from.get(), to.get(), source, destination);
  if (::fchmod(to.get(), status.st_mode & 07777) != 0) throw FsError(destination, errno);
  close_or_throw(to, destination);
}

// `status` is the source's (lstat below the top).
void copy_tree(const std::string& source, const std::string& destination,
               const struct stat& status) {
  if (S_ISREG(status.st_mode)) {
    copy_file(source, destination);
  } else if (S_ISLNK(status.st_mode)) {
    std::vector<char> target(PATH_MAX + 1);
    ssize_t size = ::readlink(source.c_str(), target.data(), target.size() - 1);
    if (size < 0) throw FsError(source, errno);
    symbolic_link(std::string(target.data(), static_cast<size_t>(size)), destination);
  } else if (S_ISDIR(status.st_mode)) {
    // Owner-writable while it fills, whatever the source's mode; the mode is copied last.
    if (::mkdir(destination.c_str(), 0700) != 0) {
      if (errno != EEXIST || !S_ISDIR(stat_or_throw(destination, true).st_mode)) {
        throw FsError(destination, errno == EEXIST ? ENOTDIR : errno);
      }
    }
    for (const std::string& name : list(source)) {
      std::string child = source + "/" + name;
      copy_tree(child, destination + "/" + name, stat_or_throw(child, false));
    }
    change_mode(destination, status.st_mode & 07777);
  } else {
    throw FsError(source, "not a regular file, directory or symlink");
  }
}

std::string resolved(const std::string& path) {
  std::unique_ptr<char, decltype(&free)> real(::realpath(path.c_str(), nullptr), &free);
  if (!real) throw FsError(path, errno);
  return real.get();
}

}  // namespace

FsError::FsError(const std::string& path, int error_number)
    : std::runtime_error(path + ": " + strerror(error_number)) {}

FsError::FsError(const std::string& path, const std::string& reason)
    : std::runtime_error(path + ": " + reason) {}

void write_all(int fd, const char* data, size_t size, const std::string& path) {
  write_all(fd, std::vector<std::string_view>{std::string_view(data, size)}, path);
}

void write_all(int fd, const std::vector<std::string_view>& pieces, const std::string& path) {
  std::vector<iovec> left;
  left.reserve(pieces.size());
  for (std::string_view piece : pieces) {
    if (!piece.empty()) left.push_back({const_cast<char*>(piece.data()), piece.size()});
  }
  size_t first = 0;
  while (first < left.size()) {
    int count = static_cast<int>(std::min<size_t>(left.size() - first, IOV_MAX));
    ssize_t written = ::writev(fd, left.data() + first, count);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw FsError(path, errno);
    }
    // A short write ends inside some piece: skip the whole ones, trim the one it ends in.
    auto done = static_cast<size_t>(written);
    while (first < left.size() && done >= left[first].iov_len) done -= left[first++].iov_len;
    if (done > 0) {
      left[first].iov_base = static_cast<char*>(left[first].iov_base) + done;
      left[first].iov_len -= done;
    }
  }
}

std::string read_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd = open_or_throw(path, O_RDONLY);
  struct stat status;
  if (::fstat(fd.get(), &status) != 0) throw FsError(path, errno);
  if (S_ISDIR(status.st_mode)) throw FsError(path, EISDIR);
  std::string content;
  if (S_ISREG(status.st_mode)) content.reserve(std::min<uint64_t>(status.st_size, max_bytes) + 1);
  size_t chunk = 64 * 1024;
  for (;;) {
    size_t used = content.size();
    content.resize(used + chunk);
    ssize_t got = ::read(fd.get(), &content[used], chunk);
    if (got < 0) {
      content.resize(used);
      if (errno == EINTR) continue;
      throw FsError(path, errno);
    }
    content.resize(used + static_cast<size_t>(got));
    if (got == 0) return content;
    if (content.size() > max_bytes) {
      throw FsError(path, "larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
}

Status status(const std::string& path, bool follow) {
  struct stat raw = stat_or_throw(path, follow);
  Status result;
  result.size = static_cast<uint64_t>(raw.st_size);
  result.mtime =
      static_cast<double>(raw.st_mtim.tv_sec) + static_cast<double>(raw.st_mtim.tv_nsec) / 1e9;
  result.mode = raw.st_mode & 07777;
  if (S_ISREG(raw.st_mode)) {
    result.type = "file";
  } else if (S_ISDIR(raw.st_mode)) {
    result.type = "directory";
  } else if (S_ISLNK(raw.st_mode)) {
    result.type = "symlink";
  }
  result.uid = raw.st_uid;
  result.gid = raw.st_gid;
  result.links = raw.st_nlink;
  return result;
}

bool exists(const std::string& path) {
  struct stat ignored;
  if (::lstat(path.c_str(), &ignored) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  throw FsError(path, errno);
}

void make_directories(const std::string& path, mode_t mode) {
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    std::string prefix = path.substr(0, end);
    if (!prefix.empty() && prefix.back() != '/' && ::mkdir(prefix.c_str(), mode) != 0) {
      int error = errno;
      struct stat existing;  // an existing directory (or a symlink to one) is what we want
      if (::stat(prefix.c_str(), &existing) != 0 || !S_ISDIR(existing.st_mode)) {
        throw FsError(prefix, error == EEXIST ? ENOTDIR : error);
      }
    }
    if (end == std::string::npos) return;
  }
}

bool remove(const std::string& path, bool recursive) {
  struct stat existing;
  if (::lstat(path.c_str(), &existing) != 0) {
    if (errno == ENOENT) return false;
    throw FsError(path, errno);
  }
  if (recursive) {
    remove_tree_at(AT_FDCWD, path.c_str(), path);
  } else if ((S_ISDIR(existing.st_mode) ? ::rmdir(path.c_str()) : ::unlink(path.c_str())) != 0) {
    throw FsError(path, errno);
  }
  return true;
}

std::vector<std::string> list(const std::string& directory) {
  DirectoryHandle handle(::opendir(directory.c_str()));
  if (!handle) throw FsError(directory, errno);
  std::vector<std::string> names = read_names(handle.get(), directory);
  std::sort(names.begin(), names.end());
  return names;
}

void copy(const std::string& source, const std::string& destination, bool recursive) {
  struct stat status = stat_or_throw(source, true);
  if (!recursive) {
    copy_file(source, destination);
    return;
  }
  if (S_ISDIR(status.st_mode)) {
    // A copy into the source itself would never end.
    std::string from = resolved(source);
    std::string into = resolved(directory_of(destination)) + "/";
    if (into.compare(0, from.size() + 1, from + "/") == 0) {
      throw FsError(destination, "is inside the directory being copied");
    }
  }
  copy_tree(source, destination, status);
}

void hard_link(const std::string& existing, const std::string& new_path) {
  if (::link(existing.c_str(), new_path.c_str()) != 0) throw FsError(new_path, errno);
}

void symbolic_link(const std::string& target, const std::string& link_path) {
  if (::symlink(target.c_str(), link_path.c_str()) != 0) throw FsError(link_path, errno);
}

void change_mode(const std::string& path, mode_t mode) {
  if (::chmod(path.c_str(), mode) != 0) throw FsError(path, errno);
}

void change_owner(const std::string& path, long uid, long gid) {
  if (::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
    throw FsError(path, errno);
  }
}

void rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw FsError(from + " -> " + to, errno);
}

namespace {
// One lookup with a buffer that grows while the database asks for more (ERANGE).
template <typename Lookup>
User look_up_user(const std::string& what, Lookup lookup) {
  std::vector<char> buffer(4096);
  struct passwd entry;
  struct passwd* found = nullptr;
  int error;
  while ((error = lookup(&entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 20)) {
    buffer.resize(buffer.size() * 2);
  }
  // "Not found" may be reported as 0 with no entry or, by some NSS sources, as one of these.
  if (error != 0 && error != ENOENT && error != ESRCH && error != EBADF && error != EPERM) {
    throw FsError(what, error);
  }
  User user;
  if (error != 0 || found == nullptr) return user;
  user.found = true;
  user.name = entry.pw_name;
  user.home = entry.pw_dir;
  user.uid = entry.pw_uid;
  user.gid = entry.pw_gid;
  return user;
}
}  // namespace

User user_named(const std::string& name) {
  return look_up_user(name,
                      [&](struct passwd* entry, char* buffer, size_t size, struct passwd** found) {
                        return ::getpwnam_r(name.c_str(), entry, buffer, size, found);
                      });
}

User effective_user() {
  uid_t uid = ::geteuid();
  User user = look_up_user("uid " + std::to_string(uid), [&](struct passwd* entry, char* buffer,
                                                             size_t size, struct passwd** found) {
    return ::getpwuid_r(uid, entry, buffer, size, found);
  });
  user.found = true;
  user.uid = uid;
  user.gid = ::getegid();
  return user;
}

Space disk_space(const std::string& path) {
  struct statvfs raw;
  if (::statvfs(path.c_str(), &raw) != 0) throw FsError(path, errno);
  return {static_cast<uint64_t>(raw.f_bavail) * raw.f_frsize,
          static_cast<uint64_t>(raw.f_blocks) * raw.f_frsize};
}

void sync_directory(const std::string& directory) {
  UniqueFd fd = open_or_throw(directory, O_RDONLY | O_DIRECTORY);
  if (::fsync(fd.get()) != 0) throw FsError(directory, errno);
}

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace depot::disk
