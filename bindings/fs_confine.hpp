// Path confinement, the security boundary of the `fs` module: turns a path a client supplied
// ("avatars/42.png") into an absolute path that provably lies under a root directory, or refuses.
// Plain C++, free of Lua; it only reads metadata (lstat, readlink, realpath), never writes.
//
// Rules (docs/lua-api.md (fs), fs.confine):
// - refused: "" (say "." for the root itself), absolute paths, NUL bytes, paths longer than
//   PATH_MAX, a ".." that would leave the root, a ".." after a part that does not exist, a
//   part under something that is not a directory, and any symlink met on the way (in any existing
//   part, the last one included) whose target — resolved like realpath — lies outside the root;
//   symlink loops;
// - "." and empty parts ("a//b", "a/b/") are ignored; ".." inside the root is resolved physically
//   (through symlinks, as the kernel would);
// - the existing prefix is returned resolved (no symlinks left in it), except the last part, which
//   keeps its own name when it is a symlink (checked to point inside), so that removing or
//   renaming the returned path acts on the link; a part that does not exist yet, and everything
//   after it, is appended as given.
//
// Caveat: this checks the tree as it is now. Someone who can create symlinks under the root while
// the server runs can swap a directory for a link between this check and the operation that
// follows (TOCTOU). Keep symlink creation out of clients' reach.
#pragma once

#include <string>

namespace depot::disk {

struct Confined {
  std::string path;   // absolute, under the root; empty when refused
  std::string error;  // why it was refused ("escapes the root", "<root>: No such file ..."), or ""
};

// `root` must name an existing directory (absolute, or relative to the working directory; it may
// itself be or contain symlinks: what it resolves to is the root).
Confined confine(const std::string& root, const std::string& user_path);

}  // namespace depot::disk
