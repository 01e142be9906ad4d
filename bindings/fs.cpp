// Lua module `fs`: files and directories for scripts, without the reactor ever waiting on a disk.
//
//   fs.confine(root, user_path)        the safe way from a client's path to a file (no yield)
//   fs.read(path [, max_bytes])        fs.write(path, data [, opts])      fs.writer(path [, opts])
//   fs.stat(path [, opts])  fs.exists(path)  fs.list(dir)  fs.disk_free(path)
//   fs.mkdir(path [, mode])  fs.remove(path [, opts])  fs.copy(src, dst [, opts])
//   fs.rename(from, to)  fs.link(existing, new)  fs.symlink(target, link)
//   fs.chmod(path, mode)  fs.chown(path, uid, gid)  fs.user([name])
//
// Where: every function except fs.confine touches the disk, so inside a task (request handler,
// timer, job) it runs on the thread pool and the task yields until it is done; where no task runs
// (plain states in tests and tools, script load time) it runs inline and blocks; inside a
// coroutine the script created itself it raises (engine/blocking.hpp).
//
// Paths: strings (numbers are not coerced); a relative path is taken under the server's data dir,
// not the process's working directory. Nothing but fs.confine restricts where a path may point:
// run every client-supplied path through it. Modes are octal strings ("0644", "755") or numbers
// (Lua has no octal literals: 0644 in Lua is decimal 644, which is why strings are preferred).
//
// Errors: operating-system failures return nil, "fs.<fn>: <path>: <strerror>" and never raise;
// wrong argument types, bad modes and unknown option names raise. The manual is
// docs/lua-api.md (fs).
#include <sodium.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bindings/binding.hpp"
#include "bindings/fs_atomic_file.hpp"
#include "bindings/fs_confine.hpp"
#include "bindings/fs_operations.hpp"
#include "bindings/fs_writer.hpp"
#include "engine/blocking.hpp"

namespace depot {
namespace {

constexpr double kDefaultReadLimit = 64.0 * 1024 * 1024;
constexpr double kLargestCount = 9007199254740992.0;  // 2^53: every integer below is exact

// ---------------------------------------------------------------------------------------------
// Argument checking. Messages name the function and the argument: "fs.read: path must be a
// string".

// A user or group id for fs.chown; nil gives -1, "leave unchanged".
long check_id(lua_State* L, int index, const char* argument) {
  if (lua_isnoneornil(L, index)) return -1;
  return static_cast<long>(check_integer(L, index, "fs.chown", argument, 0, 4294967294.0));
}

// A mode: an octal string ("0644", "755") or a number 0..4095 (07777); `fallback` when nil.
mode_t check_mode(lua_State* L, int index, const char* function, mode_t fallback) {
  if (lua_isnoneornil(L, index)) return fallback;
  if (lua_type(L, index) == LUA_TNUMBER) {
    return static_cast<mode_t>(check_integer(L, index, function, "mode", 0, 07777));
  }
  const char* text = lua_type(L, index) == LUA_TSTRING ? lua_tostring(L, index) : "";
  size_t length = strlen(text);
  bool octal = length >= 1 && length <= 5 && strspn(text, "01234567") == length;
  unsigned long mode = octal ? strtoul(text, nullptr, 8) : 0;
  if (!octal || mode > 07777) {
    luaL_error(L, "%s: mode must be an octal string such as \"0644\" or a number 0..4095",
               function);
  }
  return static_cast<mode_t>(mode);
}

// Leaves options[name] on the stack top (nil when there are no options).
void get_option(lua_State* L, int index, const char* name) {
  if (lua_istable(L, index)) {
    lua_getfield(L, index, name);
  } else {
    lua_pushnil(L);
  }
}

bool boolean_option(lua_State* L, int index, const char* function, const char* name,
                    bool fallback) {
  get_option(L, index, name);
  bool value = fallback;
  if (lua_isboolean(L, -1)) {
    value = lua_toboolean(L, -1) != 0;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: option %s must be a boolean", function, name);
  }
  lua_pop(L, 1);
  return value;
}

// fsync and mode, shared by fs.write and fs.writer; hash options only for the writer.
disk::AtomicFileOptions check_file_options(lua_State* L, int index, const char* function,
                                           bool hashing) {
  if (hashing) {
    check_options(L, index, function, {"fsync", "mode", "hash", "hash_size"});
  } else {
    check_options(L, index, function, {"fsync", "mode"});
  }
  disk::AtomicFileOptions options;
  options.fsync = boolean_option(L, index, function, "fsync", false);
  get_option(L, index, "mode");
  options.mode = check_mode(L, lua_gettop(L), function, 0644);
  lua_pop(L, 1);
  if (!hashing) return options;
  get_option(L, index, "hash");
  const char* hash = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
  if (hash != nullptr && strcmp(hash, "blake2b") == 0) {
    options.hash = disk::HashKind::blake2b;
  } else if (hash != nullptr && strcmp(hash, "sha256") == 0) {
    options.hash = disk::HashKind::sha256;
  } else if (hash != nullptr && strcmp(hash, "xxh128") == 0) {
    options.hash = disk::HashKind::xxh128;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: option hash must be \"blake2b\", \"sha256\" or \"xxh128\"", function);
  }
  lua_pop(L, 1);
  get_option(L, index, "hash_size");
  if (!lua_isnil(L, -1)) {
    if (options.hash != disk::HashKind::blake2b) {
      luaL_error(L, "%s: option hash_size is for hash = \"blake2b\"", function);
    }
    options.hash_size = static_cast<size_t>(check_integer(L, lua_gettop(L), function, "hash_size",
                                                          crypto_generichash_BYTES_MIN,
                                                          crypto_generichash_BYTES_MAX));
  }
  lua_pop(L, 1);
  return options;
}

// ---------------------------------------------------------------------------------------------
// Results, pushed on the worker thread.

Task::Pusher boolean_pusher(bool value) {
  return [value](lua_State* co) {
    lua_pushboolean(co, value);
    return 1;
  };
}

// run_blocking for an operation with nothing to return: the call returns true.
template <typename Operation>
int run_returning_true(lua_State* L, const char* function, Operation operation) {
  return run_blocking(L, function, [operation]() -> Task::Pusher {
    operation();
    return push_true;
  });
}

void set_number(lua_State* L, const char* name, double value) {
  lua_pushnumber(L, value);
  lua_setfield(L, -2, name);
}

// ---------------------------------------------------------------------------------------------
// The functions. Each checks its arguments (raising), then hands the disk work to run_blocking.

// fs.confine(root, user_path) -> absolute path | nil, message
//   Resolves a client-supplied relative path under `root` (a directory; relative roots are under
//   the data dir) and proves the result stays inside: refuses "", absolute paths, NUL bytes,
//   ".." escapes, and symlinks in any existing part that point outside root. "." is the root
//   itself. Full rules: bindings/fs_confine.hpp.
//   Where: anywhere; never yields (it reads metadata only: lstat, readlink).
//   Errors: raises if root or user_path is not a string; returns nil, "fs.confine: <reason>"
//   when refused (and when root does not exist).
//   Example: local path, err = fs.confine("uploads", req.params.name)
//            if not path then depot.fail(400, err) end
int lua_confine(lua_State* L) {
  std::string root = check_path(L, 1, "fs.confine", "root");
  std::string user_path = check_string(L, 2, "fs.confine", "user_path");
  disk::Confined confined = disk::confine(root, user_path);
  if (confined.path.empty()) return push_failure(L, "fs.confine: " + confined.error);
  lua_pushlstring(L, confined.path.data(), confined.path.size());
  return 1;
}

// fs.read(path [, max_bytes]) -> string | nil, message
//   The whole file (or what a pipe delivers until it closes). max_bytes defaults to 64 MiB; a
//   longer file is an error, not a truncated read.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.read: <path>: <strerror>" (or "larger than
//   <max_bytes> bytes").
//   Example: local text = assert(fs.read("config/motd.txt", 4096))
int lua_read(lua_State* L) {
  std::string path = check_path(L, 1, "fs.read", "path");
  double max_bytes = lua_isnoneornil(L, 2)
                         ? kDefaultReadLimit
                         : check_integer(L, 2, "fs.read", "max_bytes", 0, kLargestCount);
  return run_blocking(L, "fs.read", [path, max_bytes]() -> Task::Pusher {
    auto content =
        std::make_shared<std::string>(disk::read_file(path, static_cast<size_t>(max_bytes)));
    return [content](lua_State* co) {
      lua_pushlstring(co, content->data(), content->size());
      return 1;
    };
  });
}

// fs.write(path, data [, {fsync = false, mode = "0644"}]) -> true | nil, message
//   Replaces the file atomically: writes a hidden temporary file in the same directory, then
//   renames it over `path`. Readers see the old content or the new, never a mix. With fsync, the
//   file and its directory are fsynced (durable across power loss; ~0.25 ms per fsync here plus
//   the write-back). mode is set exactly (no umask).
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types or options; nil, "fs.write: <path>: <strerror>".
//   Example: assert(fs.write("state/counter", tostring(n), {fsync = true}))
int lua_write(lua_State* L) {
  std::string path = check_path(L, 1, "fs.write", "path");
  auto data = std::make_shared<std::string>(check_string(L, 2, "fs.write", "data"));
  disk::AtomicFileOptions options = check_file_options(L, 3, "fs.write", false);
  return run_returning_true(L, "fs.write", [path, data, options] {
    disk::AtomicFile file(path, options);
    file.append(*data);
    file.commit();
  });
}

// fs.writer(path [, {fsync = false, hash = nil|"blake2b"|"sha256"|"xxh128", hash_size = 64,
//                    mode = "0644"}]) -> writer | nil, message
//   A write stream for large files (uploads): w:write(chunk) -> true | nil, message;
//   w:bytes(); w:commit() -> bytes, hex_digest_or_nil | nil, message; w:abort() -> true.
//   Data lands in ".<name>.tmp.<random>" next to `path`; commit renames it over `path`. A writer
//   dropped without commit is aborted by the garbage collector. See bindings/fs_writer.hpp.
//   Where: inside a task (creating it, a write that waits, commit and abort yield); blocks
//   elsewhere.
//   Errors: raises on wrong argument types or options; nil, "fs.writer: <path>: <strerror>".
//   Example: local w = assert(fs.writer(path, {hash = "blake2b"}))
//            for chunk in req.read, req do assert(w:write(chunk)) end
//            local bytes, digest = assert(w:commit())
int lua_writer(lua_State* L) {
  std::string path = check_path(L, 1, "fs.writer", "path");
  disk::AtomicFileOptions options = check_file_options(L, 2, "fs.writer", true);
  return open_writer(L, std::move(path), options);
}

// fs.stat(path [, {follow = false}]) -> {size, mtime, mode, type, uid, gid, links} | nil, message
//   lstat by default (a symlink is described as itself, type "symlink"); follow = true describes
//   what it points to. mtime is seconds since the epoch with fractions; mode the permission bits
//   as a number (string.format("%o", st.mode) prints it in octal); type is "file", "directory",
//   "symlink" or "other".
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.stat: <path>: <strerror>".
//   Example: local st = fs.stat(path); if st and st.type == "file" then ... end
int lua_stat(lua_State* L) {
  std::string path = check_path(L, 1, "fs.stat", "path");
  check_options(L, 2, "fs.stat", {"follow"});
  bool follow = boolean_option(L, 2, "fs.stat", "follow", false);
  return run_blocking(L, "fs.stat", [path, follow]() -> Task::Pusher {
    disk::Status status = disk::status(path, follow);
    return [status](lua_State* co) {
      lua_createtable(co, 0, 7);
      set_number(co, "size", static_cast<double>(status.size));
      set_number(co, "mtime", status.mtime);
      set_number(co, "mode", status.mode);
      lua_pushstring(co, status.type);
      lua_setfield(co, -2, "type");
      set_number(co, "uid", status.uid);
      set_number(co, "gid", status.gid);
      set_number(co, "links", static_cast<double>(status.links));
      return 1;
    };
  });
}

// fs.exists(path) -> boolean | nil, message
//   Whether a directory entry exists at path (lstat: a dangling symlink exists).
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, message for failures other than "does not
//   exist" (permission denied on a parent, say).
//   Example: if not fs.exists(path) then ... end
int lua_exists(lua_State* L) {
  std::string path = check_path(L, 1, "fs.exists", "path");
  return run_blocking(L, "fs.exists",
                      [path]() -> Task::Pusher { return boolean_pusher(disk::exists(path)); });
}

// fs.mkdir(path [, mode = "0755"]) -> true | nil, message
//   mkdir -p: creates the directory and any missing parents (each with mode, less the umask). An
//   existing directory is success.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types or a bad mode; nil, "fs.mkdir: <path>: <strerror>"
//   (an existing file in the way gives "Not a directory").
//   Example: assert(fs.mkdir("uploads/" .. user_id, "0700"))
int lua_mkdir(lua_State* L) {
  std::string path = check_path(L, 1, "fs.mkdir", "path");
  mode_t mode = check_mode(L, 2, "fs.mkdir", 0755);
  return run_returning_true(L, "fs.mkdir", [path, mode] { disk::make_directories(path, mode); });
}

// fs.remove(path [, {recursive = false}]) -> true | false | nil, message
//   Removes a file, symlink (never its target) or empty directory; with recursive, a whole tree
//   (symlinks inside it are removed, never followed). true when something was removed, false when
//   nothing existed at path.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types or options; nil, "fs.remove: <path>: <strerror>"
//   (e.g. "Directory not empty" without recursive).
//   Example: fs.remove(fs.confine(root, name), {recursive = true})
int lua_remove(lua_State* L) {
  std::string path = check_path(L, 1, "fs.remove", "path");
  check_options(L, 2, "fs.remove", {"recursive"});
  bool recursive = boolean_option(L, 2, "fs.remove", "recursive", false);
  return run_blocking(L, "fs.remove", [path, recursive]() -> Task::Pusher {
    return boolean_pusher(disk::remove(path, recursive));
  });
}

// fs.list(dir) -> {name, ...} | nil, message
//   The names in dir (not "." or ".."), sorted bytewise; hidden files included.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.list: <dir>: <strerror>".
//   Example: for _, name in ipairs(assert(fs.list("uploads"))) do ... end
int lua_list(lua_State* L) {
  std::string path = check_path(L, 1, "fs.list", "dir");
  return run_blocking(L, "fs.list", [path]() -> Task::Pusher {
    auto names = std::make_shared<std::vector<std::string>>(disk::list(path));
    return [names](lua_State* co) {
      lua_createtable(co, static_cast<int>(names->size()), 0);
      for (size_t i = 0; i < names->size(); ++i) {
        lua_pushlstring(co, (*names)[i].data(), (*names)[i].size());
        lua_rawseti(co, -2, static_cast<int>(i + 1));
      }
      return 1;
    };
  });
}

// fs.copy(src, dst [, {recursive = false}]) -> true | nil, message
//   Copies a file to dst (the copy's own name, not its parent), keeping its permission bits, with
//   copy_file_range (in-kernel) and a read/write fallback. With recursive, src may be a directory:
//   the tree is copied, modes kept, symlinks inside copied as symlinks; an existing dst directory
//   is merged into. src itself is followed when it is a symlink. Not atomic: use fs.write or
//   fs.writer when readers must never see a partial copy.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types or options; nil, "fs.copy: <path>: <strerror>" —
//   also for a directory without recursive, a copy into the source itself, a file onto itself.
//   Example: assert(fs.copy("templates/site", "sites/" .. id, {recursive = true}))
int lua_copy(lua_State* L) {
  std::string source = check_path(L, 1, "fs.copy", "src");
  std::string destination = check_path(L, 2, "fs.copy", "dst");
  check_options(L, 3, "fs.copy", {"recursive"});
  bool recursive = boolean_option(L, 3, "fs.copy", "recursive", false);
  return run_returning_true(L, "fs.copy", [source, destination, recursive] {
    disk::copy(source, destination, recursive);
  });
}

// fs.link(existing, new_path) -> true | nil, message
//   A hard link: new_path becomes another name for the same file (same filesystem only).
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.link: <new_path>: <strerror>".
//   Example: assert(fs.link("blobs/" .. digest, "users/" .. id .. "/avatar"))
int lua_link(lua_State* L) {
  std::string existing = check_path(L, 1, "fs.link", "existing");
  std::string new_path = check_path(L, 2, "fs.link", "new_path");
  return run_returning_true(L, "fs.link",
                            [existing, new_path] { disk::hard_link(existing, new_path); });
}

// fs.symlink(target, link_path) -> true | nil, message
//   Creates a symlink at link_path whose content is target, stored verbatim (a relative target is
//   relative to link_path's directory, as always with symlinks; it is not taken under the data
//   dir). fs.confine refuses paths through links that point outside its root.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.symlink: <link_path>: <strerror>".
//   Example: assert(fs.symlink("releases/42", "sites/current.tmp"))
int lua_symlink(lua_State* L) {
  std::string target = check_string(L, 1, "fs.symlink", "target");
  if (target.empty() || target.find('\0') != std::string::npos) {
    luaL_error(L, "fs.symlink: target must be a non-empty string without NUL bytes");
  }
  std::string link_path = check_path(L, 2, "fs.symlink", "link_path");
  return run_returning_true(L, "fs.symlink",
                            [target, link_path] { disk::symbolic_link(target, link_path); });
}

// fs.chmod(path, mode) -> true | nil, message
//   Sets the permission bits (follows symlinks). mode: "0640", "755", or a number.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types or a bad mode; nil, "fs.chmod: <path>: <strerror>".
//   Example: assert(fs.chmod(path, "0600"))
int lua_chmod(lua_State* L) {
  std::string path = check_path(L, 1, "fs.chmod", "path");
  if (lua_isnoneornil(L, 2)) luaL_error(L, "fs.chmod: mode is required");
  mode_t mode = check_mode(L, 2, "fs.chmod", 0);
  return run_returning_true(L, "fs.chmod", [path, mode] { disk::change_mode(path, mode); });
}

// fs.chown(path, uid, gid) -> true | nil, message
//   Changes owner and group (follows symlinks); nil leaves that one unchanged. Changing the owner
//   needs privileges; a process may give a file it owns to one of its own groups.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises if uid or gid is neither nil nor an integer 0..4294967294; nil,
//   "fs.chown: <path>: <strerror>" (typically "Operation not permitted").
//   Example: assert(fs.chown(path, nil, 1000))
int lua_chown(lua_State* L) {
  std::string path = check_path(L, 1, "fs.chown", "path");
  long uid = check_id(L, 2, "uid");
  long gid = check_id(L, 3, "gid");
  return run_returning_true(L, "fs.chown",
                            [path, uid, gid] { disk::change_owner(path, uid, gid); });
}

// fs.user([name]) -> {name, uid, gid, home} | nil
//   The account `name` in the user database (getpwnam_r: /etc/passwd and any NSS source), or nil
//   when there is none; without `name`, the process's effective user (uid and gid always; name
//   and home when the database lists it). For giving files to users with fs.chown.
//   Where: yields inside a task (NSS may ask the network); blocks elsewhere.
//   Errors: raises if name is not a string; nil, "fs.user: <name>: <strerror>" when the database
//   fails.
//   Example: local owner = fs.user(username); if owner then fs.chown(path, owner.uid, owner.gid)
//   end
int lua_user(lua_State* L) {
  bool named = !lua_isnoneornil(L, 1);
  std::string name = named ? check_string(L, 1, "fs.user", "name") : std::string();
  return run_blocking(L, "fs.user", [named, name]() -> Task::Pusher {
    disk::User user = named ? disk::user_named(name) : disk::effective_user();
    return [user](lua_State* co) {
      if (!user.found) {
        lua_pushnil(co);
        return 1;
      }
      lua_createtable(co, 0, 4);
      if (!user.name.empty()) {
        lua_pushlstring(co, user.name.data(), user.name.size());
        lua_setfield(co, -2, "name");
      }
      if (!user.home.empty()) {
        lua_pushlstring(co, user.home.data(), user.home.size());
        lua_setfield(co, -2, "home");
      }
      set_number(co, "uid", user.uid);
      set_number(co, "gid", user.gid);
      return 1;
    };
  });
}

// fs.rename(from, to) -> true | nil, message
//   rename(2): atomic within one filesystem, replaces an existing file at `to`.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.rename: <from> -> <to>: <strerror>"
//   ("Invalid cross-device link" across filesystems: copy, then remove).
//   Example: assert(fs.rename("incoming/" .. id, "done/" .. id))
int lua_rename(lua_State* L) {
  std::string from = check_path(L, 1, "fs.rename", "from");
  std::string to = check_path(L, 2, "fs.rename", "to");
  return run_returning_true(L, "fs.rename", [from, to] { disk::rename(from, to); });
}

// fs.disk_free(path) -> available_bytes, total_bytes | nil, message
//   Space on the filesystem holding path: what an unprivileged process may still write, and the
//   filesystem's size.
//   Where: yields inside a task; blocks elsewhere.
//   Errors: raises on wrong argument types; nil, "fs.disk_free: <path>: <strerror>".
//   Example: if fs.disk_free(".") < 1e9 then depot.fail(507, "disk almost full") end
int lua_disk_free(lua_State* L) {
  std::string path = check_path(L, 1, "fs.disk_free", "path");
  return run_blocking(L, "fs.disk_free", [path]() -> Task::Pusher {
    disk::Space space = disk::disk_space(path);
    return [space](lua_State* co) {
      lua_pushnumber(co, static_cast<double>(space.available));
      lua_pushnumber(co, static_cast<double>(space.total));
      return 2;
    };
  });
}

}  // namespace

int open_fs(lua_State* L) {
  if (sodium_init() < 0) return luaL_error(L, "fs: libsodium failed to initialise");
  create_writer_metatable(L);
  const luaL_Reg functions[] = {
      {"confine", lua_confine},     {"read", lua_read},     {"write", lua_write},
      {"writer", lua_writer},       {"stat", lua_stat},     {"exists", lua_exists},
      {"mkdir", lua_mkdir},         {"remove", lua_remove}, {"list", lua_list},
      {"copy", lua_copy},           {"link", lua_link},     {"symlink", lua_symlink},
      {"chmod", lua_chmod},         {"chown", lua_chown},   {"rename", lua_rename},
      {"disk_free", lua_disk_free}, {"user", lua_user},     {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
