// The blocking filesystem operations behind the `fs` module, in plain C++ free of Lua, so that they
// can run on pool threads: each one may wait on the disk for as long as the disk takes. Failures
// throw FsError ("<path>: <strerror>"), which the binding turns into `nil, "fs.<fn>: <message>"`.
//
// Paths are used as given (the module resolves relative ones against the data dir before).
// Nothing here confines paths: that is fs_confine.hpp's job, done before calling in.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/unique_fd.hpp"

namespace depot::disk {

class FsError : public std::runtime_error {
 public:
  // "<path>: <strerror(error_number)>"
  FsError(const std::string& path, int error_number);
  // "<path>: <reason>"
  FsError(const std::string& path, const std::string& reason);
};

// Writes all of `data` to `fd` (retrying short writes and EINTR); `path` names it in errors.
void write_all(int fd, const char* data, size_t size, const std::string& path);
// The same for `pieces` one after another, in as few writev calls as IOV_MAX allows.
void write_all(int fd, const std::vector<std::string_view>& pieces, const std::string& path);

// At most `max_bytes` bytes of the file (reads until end of file; works on pipes). A longer file
// throws "<path>: larger than <max_bytes> bytes".
std::string read_file(const std::string& path, size_t max_bytes);

struct Status {
  uint64_t size = 0;
  double mtime = 0;            // seconds since the epoch, with fractions
  unsigned mode = 0;           // permission bits (07777)
  const char* type = "other";  // "file", "directory", "symlink" or "other"
  unsigned uid = 0;
  unsigned gid = 0;
  uint64_t links = 0;
};
// lstat, or stat when `follow`.
Status status(const std::string& path, bool follow);
// Whether a directory entry exists (lstat: a dangling symlink exists).
bool exists(const std::string& path);

// mkdir -p: creates missing parents too (each with `mode`, less the umask); an existing
// directory is fine, an existing non-directory is an error.
void make_directories(const std::string& path, mode_t mode);
// Removes a file, symlink or empty directory; with `recursive`, a whole tree (never following
// symlinks out of it). False when there was nothing to remove.
bool remove(const std::string& path, bool recursive);
// Entry names in `directory` (no "." and ".."), sorted bytewise.
std::vector<std::string> list(const std::string& directory);
// Copies a file (copy_file_range, read/write where the kernel cannot) keeping its permission bits;
// with `recursive`, a directory tree, symlinks inside it copied as symlinks. `source` itself is
// followed when it is a symlink. An existing destination file is overwritten; an existing
// destination directory is merged into.
void copy(const std::string& source, const std::string& destination, bool recursive);

void hard_link(const std::string& existing, const std::string& new_path);
void symbolic_link(const std::string& target, const std::string& link_path);
void change_mode(const std::string& path, mode_t mode);
// -1 leaves that id unchanged. Follows symlinks, as chmod does.
void change_owner(const std::string& path, long uid, long gid);
void rename(const std::string& from, const std::string& to);

// An account in the user database (getpwnam_r / getpwuid_r, so NSS sources count too).
struct User {
  bool found = false;
  std::string name;
  std::string home;
  unsigned uid = 0;
  unsigned gid = 0;
};
// The account called `name` (found = false when there is none).
User user_named(const std::string& name);
// The process's effective user: uid and gid always, name and home when the database has them.
User effective_user();

struct Space {
  uint64_t available = 0;  // bytes an unprivileged user may still write
  uint64_t total = 0;
};
Space disk_space(const std::string& path);

// fsync of the directory `directory`, making renames and creations in it durable.
void sync_directory(const std::string& directory);
// The directory part of `path` ("." for a bare name).
std::string directory_of(const std::string& path);

}  // namespace depot::disk
