// A file that appears whole or not at all: data goes to a hidden temporary file next to the
// target (".<name>.tmp.<16 hex>", same directory, so same filesystem), hashed as it goes, and
// commit() renames it over the target in one step. Until then readers see the previous version (or
// nothing); abort() — or destroying an uncommitted AtomicFile — removes the temporary file.
// Behind fs.write and fs.writer.
//
// Plain C++, free of Lua; every method blocks on the disk, so call them from pool threads (or
// inline in plain states). Thread-safe: a mutex orders calls from different pool threads (a write
// still running when the garbage collector aborts the stream). Failures throw disk::FsError.
//
// Ownership: the writer holds an flock on its temporary file for as long as it is open, so a
// temporary file nobody holds locked was left by a process that died before commit or abort
// (kill -9, a crash, a power cut). remove_abandoned_temporaries() removes those at server start.
// Locks rather than pids in names because a restarted container's server is pid 1 again.
//
// Durability: with `fsync`, commit() fsyncs the file before the rename and the directory after
// it, so a committed file survives a power cut; ~0.25 ms per fsync on our disks, plus the time to
// write back whatever is still dirty. Without it the rename is still atomic for readers, but a
// crash soon after may leave the old version, or an empty file, on some filesystems.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/fs_operations.hpp"

namespace depot::disk {

// xxh128 (XXH3, 128 bits) guards against corruption at memory speed (~0.05 ms per MiB, where
// BLAKE2b takes ~1.4 ms); blake2b and sha256 when the digest must resist a forger.
enum class HashKind { none, blake2b, sha256, xxh128 };

struct AtomicFileOptions {
  bool fsync = false;
  HashKind hash = HashKind::none;
  size_t hash_size = 64;  // blake2b digest bytes, 16..64
  mode_t mode = 0644;     // set exactly (the umask does not apply)
};

class AtomicFile {
 public:
  struct Result {
    uint64_t bytes = 0;
    std::string hex_digest;  // "" without a hash
  };

  // Creates the temporary file for `path`.
  AtomicFile(std::string path, AtomicFileOptions options);
  ~AtomicFile();  // aborts unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void append(std::string_view data);
  // Appends `pieces` one after another (one writev: no copy to join them first).
  void append(const std::vector<std::string_view>& pieces);
  // Renames the temporary file over the target (fsyncs as configured). On failure the temporary
  // file is removed and the target left as it was.
  Result commit();
  // Removes the temporary file; further calls fail. Idempotent, never throws.
  void abort() noexcept;

  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return temporary_path_; }

 private:
  class Digest;

  void abort_locked() noexcept;
  void check_open() const;

  std::mutex mutex_;
  std::string path_;
  std::string temporary_path_;
  AtomicFileOptions options_;
  UniqueFd fd_;
  std::unique_ptr<Digest> digest_;
  uint64_t bytes_ = 0;
  enum class State { open, committed, aborted } state_ = State::open;
};

struct AbandonedTemporaries {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Removes the temporary files of AtomicFiles under `root` (recursively, symlinks not followed)
// that no live writer holds locked; returns what it removed. Safe while other processes (`depot
// admin`, a second server) write under `root`: their files are locked — except during the few
// system calls between a writer's open and its lock, and between its close and its rename, where
// that writer's commit then fails (reported; the target keeps its previous version). Blocks on the
// disk and costs one directory walk: call it from a pool thread.
AbandonedTemporaries remove_abandoned_temporaries(const std::string& root);

}  // namespace depot::disk
