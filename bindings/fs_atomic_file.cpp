// Temporary file + rename, hashed on the way (see fs_atomic_file.hpp).
#include "bindings/fs_atomic_file.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>

namespace depot::disk {
namespace {
constexpr std::string_view kTemporaryMarker = ".tmp.";
constexpr size_t kSuffixLength = 16;  // hex digits of 8 random bytes

// ".<name>.tmp.<16 hex>", as the constructor names them.
bool is_temporary_name(std::string_view name) {
  size_t fixed = 1 + kTemporaryMarker.size() + kSuffixLength;
  if (name.size() <= fixed || name.front() != '.') return false;
  std::string_view suffix = name.substr(name.size() - kSuffixLength);
  if (name.substr(name.size() - kSuffixLength - kTemporaryMarker.size(), kTemporaryMarker.size()) !=
      kTemporaryMarker) {
    return false;
  }
  for (char c : suffix) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
}  // namespace

// The incremental hash of what was appended. Heap-allocated: libsodium's BLAKE2b state wants
// 64-byte alignment (XXH3's is allocated by libxxhash, aligned as it needs).
class AtomicFile::Digest {
 public:
  Digest(HashKind kind, size_t size) : kind_(kind), size_(size) {
    if (kind_ == HashKind::blake2b) {
      crypto_generichash_init(&blake2b_, nullptr, 0, size_);
    } else if (kind_ == HashKind::sha256) {
      crypto_hash_sha256_init(&sha256_);
      size_ = crypto_hash_sha256_BYTES;
    } else {
      xxh3_.reset(XXH3_createState());
      if (!xxh3_ || XXH3_128bits_reset(xxh3_.get()) != XXH_OK) throw std::bad_alloc();
      size_ = sizeof(XXH128_canonical_t);
    }
  }
  ~Digest() {
    sodium_memzero(&blake2b_, sizeof blake2b_);
    sodium_memzero(&sha256_, sizeof sha256_);
  }

  void update(std::string_view data) {
    auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
    if (kind_ == HashKind::blake2b) {
      crypto_generichash_update(&blake2b_, bytes, data.size());
    } else if (kind_ == HashKind::sha256) {
      crypto_hash_sha256_update(&sha256_, bytes, data.size());
    } else {
      XXH3_128bits_update(xxh3_.get(), bytes, data.size());
    }
  }

  std::string hex() {
    unsigned char digest[crypto_generichash_BYTES_MAX];
    if (kind_ == HashKind::blake2b) {
      crypto_generichash_final(&blake2b_, digest, size_);
    } else if (kind_ == HashKind::sha256) {
      crypto_hash_sha256_final(&sha256_, digest);
    } else {  // big-endian, as xxh128sum prints it
      XXH128_canonical_t canonical;
      XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(xxh3_.get()));
      std::memcpy(digest, canonical.digest, sizeof canonical.digest);
    }
    char hex[2 * crypto_generichash_BYTES_MAX + 1];
    sodium_bin2hex(hex, sizeof hex, digest, size_);
    return hex;
  }

 private:
  struct FreeXxh3 {
    void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
  };

  HashKind kind_;
  size_t size_;
  crypto_generichash_state blake2b_{};
  crypto_hash_sha256_state sha256_{};
  std::unique_ptr<XXH3_state_t, FreeXxh3> xxh3_;
};

AtomicFile::AtomicFile(std::string path, AtomicFileOptions options)
    : path_(std::move(path)), options_(options) {
  size_t slash = path_.rfind('/');
  std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") throw FsError(path_, "not a file name");
  if (sodium_init() < 0) throw FsError(path_, "libsodium failed to initialise");
  unsigned char random[8];
  randombytes_buf(random, sizeof random);
  char suffix[2 * sizeof random + 1];
  sodium_bin2hex(suffix, sizeof suffix, random, sizeof random);
  std::string directory = slash == std::string::npos ? "" : path_.substr(0, slash + 1);
  temporary_path_ = directory + "." + name + std::string(kTemporaryMarker) + suffix;
  int fd = ::open(temporary_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw FsError(path_, errno);
  fd_ = UniqueFd(fd);
  // The mark of a live writer (see the header). A filesystem without locks (ENOLCK) loses only
  // the cleanup at start: an unlockable file is never taken for abandoned.
  ::flock(fd, LOCK_EX | LOCK_NB);
  if (::fchmod(fd, options_.mode) != 0) {
    int error = errno;
    abort_locked();
    throw FsError(path_, error);
  }
  if (options_.hash != HashKind::none) {
    digest_ = std::make_unique<Digest>(options_.hash, options_.hash_size);
  }
}

AtomicFile::~AtomicFile() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (state_ == State::open) abort_locked();
}

void AtomicFile::check_open() const {
  if (state_ == State::committed) throw FsError(path_, "already committed");
  if (state_ == State::aborted) throw FsError(path_, "aborted");
}

void AtomicFile::append(std::string_view data) {
  append(std::vector<std::string_view>{data});
}

void AtomicFile::append(const std::vector<std::string_view>& pieces) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_open();
  size_t size = 0;
  for (std::string_view piece : pieces) {
    if (digest_) digest_->update(piece);
    size += piece.size();
  }
  try {
    write_all(fd_.get(), pieces, path_);
  } catch (const FsError&) {
    abort_locked();
    throw;
  }
  bytes_ += size;
}

AtomicFile::Result AtomicFile::commit() {
  std::lock_guard<std::mutex> lock(mutex_);
  check_open();
  try {
    if (options_.fsync && ::fsync(fd_.get()) != 0) throw FsError(path_, errno);
    if (fd_.reset() != 0) throw FsError(path_, errno);  // NFS and quotas report late errors here
    if (::rename(temporary_path_.c_str(), path_.c_str()) != 0) throw FsError(path_, errno);
  } catch (const FsError&) {
    abort_locked();
    throw;
  }
  state_ = State::committed;
  // The file is in place. A failing directory fsync is still reported: durability was asked for
  // and is not certain.
  if (options_.fsync) sync_directory(directory_of(path_));
  return {bytes_, digest_ ? digest_->hex() : ""};
}

void AtomicFile::abort() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  abort_locked();
}

void AtomicFile::abort_locked() noexcept {
  if (state_ != State::open) return;
  state_ = State::aborted;
  fd_.reset();
  ::unlink(temporary_path_.c_str());
}

AbandonedTemporaries remove_abandoned_temporaries(const std::string& root) {
  AbandonedTemporaries removed;
  std::error_code error;
  std::filesystem::recursive_directory_iterator it(
      root, std::filesystem::directory_options::skip_permission_denied, error);
  for (; !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    std::string name = it->path().filename().string();
    std::error_code ignored;  // an entry gone or unreadable meanwhile is skipped, not the walk
    if (!is_temporary_name(name) || !it->is_regular_file(ignored)) continue;
    UniqueFd fd(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0 || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // a live writer's
    struct stat info;
    if (::fstat(fd.get(), &info) != 0 || ::unlink(it->path().c_str()) != 0) continue;
    ++removed.files;
    removed.bytes += static_cast<uint64_t>(info.st_size);
  }
  return removed;
}

}  // namespace depot::disk
