// Lua module `crypto`: hashing, HMAC, randomness, constant-time comparison, hex/base64 codecs and
// password hashing, from libsodium but for SHA-256 (see sha256_digest). Nothing here yields, so
// every function may be called anywhere: at script load, in requests, timers and jobs, and in plain
// states (tests, tools).
//
// Signatures with JSON Web Keys (RS256, ES256) come from OpenSSL instead: bindings/crypto_jwk.cpp.
//
// Digests and random bytes are raw byte strings; pass them through crypto.hex or crypto.base64url
// to print them. The user-facing manual is docs/lua-api.md (crypto).
//
// crypto.password_hash and crypto.password_verify cost ~50-100 ms of CPU and 64 MiB of memory
// each with the default limits: inside a task they run on the thread pool while the task waits
// (engine/blocking.hpp); elsewhere (load time, plain states) they block the calling thread.
//
// Lua errors are raised only while no C++ object with a destructor is alive (a Lua error
// longjmps), which is why byte buffers are Lua-owned scratch userdata rather than std::string.
#include <openssl/evp.h>
#include <sodium.h>
#include <xxhash.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

#include "bindings/binding.hpp"
#include "engine/blocking.hpp"

namespace depot {

// crypto.jwk_verify and crypto.jwk_sign (bindings/crypto_jwk.cpp): adds them to the table on top.
void add_jwk_functions(lua_State* L);

namespace {

const char* const kStreamMetatable = "depot.crypto.stream";

// ---------------------------------------------------------------------------------------------
// Plain C++ work, free of Lua: safe to call from any thread.

// A password hashing failure: memory ran out (or the limits were out of range).
class PasswordHashError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// argon2id cost. Callers check the ranges (crypto_pwhash_OPSLIMIT_MIN..MAX, MEMLIMIT_MIN..MAX)
// where they can name the argument; libsodium rejects anything else.
struct PasswordLimits {
  unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
};

// An argon2id hash with a random salt in libsodium's self-describing string form
// ("$argon2id$v=19$m=..."). Blocks for as long as the limits say; throws PasswordHashError.
std::string password_hash(std::string_view password, PasswordLimits limits) {
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, password.data(), password.size(), limits.ops, limits.mem) != 0) {
    throw PasswordHashError("out of memory (or limits out of range)");
  }
  return hash;
}

// Whether `password` matches a hash made by password_hash; a malformed hash never matches.
// Costs as much as the hashing did.
bool password_verify(const std::string& hash, std::string_view password) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

// One incremental hash computation. Heap-allocated and owned by a Lua userdata, because libsodium's
// BLAKE2b state needs 64-byte alignment that Lua userdata memory does not have.
class Hasher {
 public:
  static constexpr size_t kMaxDigestSize = 64;

  virtual ~Hasher() = default;
  virtual void update(const unsigned char* data, size_t size) = 0;
  // Writes the digest to `out` (room for kMaxDigestSize bytes) and returns its size.
  virtual size_t finish(unsigned char* out) = 0;
};

class Blake2bHasher final : public Hasher {
 public:
  Blake2bHasher(size_t digest_size, const unsigned char* key, size_t key_size)
      : digest_size_(digest_size) {
    crypto_generichash_blake2b_init(&state_, key, key_size, digest_size);
  }
  ~Blake2bHasher() override { sodium_memzero(&state_, sizeof state_); }

  void update(const unsigned char* data, size_t size) override {
    crypto_generichash_blake2b_update(&state_, data, size);
  }
  size_t finish(unsigned char* out) override {
    crypto_generichash_blake2b_final(&state_, out, digest_size_);
    return digest_size_;
  }

 private:
  crypto_generichash_blake2b_state state_;
  size_t digest_size_;
};

// SHA-256 from OpenSSL, not libsodium: libsodium's is portable C at ~50 instructions a byte, a
// third of the image cache's POST /requests (two hashes of a 3.8 KB query); OpenSSL's uses the
// CPU's SHA extensions where it has them. Fetched once: an implicit fetch per call takes a lock.
const EVP_MD* sha256_algorithm() {
  static const EVP_MD* algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return algorithm;
}

constexpr size_t kSha256Size = 32;

// False only when OpenSSL failed (out of memory): callers raise.
bool sha256_digest(const unsigned char* data, size_t size, unsigned char* out) {
  const EVP_MD* algorithm = sha256_algorithm();
  return algorithm != nullptr && EVP_Digest(data, size, out, nullptr, algorithm, nullptr) == 1;
}

class Sha256Hasher final : public Hasher {
 public:
  Sha256Hasher() : context_(EVP_MD_CTX_new()) {
    const EVP_MD* algorithm = sha256_algorithm();
    if (context_ &&
        (algorithm == nullptr || EVP_DigestInit_ex2(context_.get(), algorithm, nullptr) != 1)) {
      context_.reset();
    }
  }
  // False when OpenSSL could not set up its context (a Lua error must not cross a constructor).
  bool ready() const { return context_ != nullptr; }

  void update(const unsigned char* data, size_t size) override {
    EVP_DigestUpdate(context_.get(), data, size);
  }
  size_t finish(unsigned char* out) override {
    EVP_DigestFinal_ex(context_.get(), out, nullptr);
    return kSha256Size;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> context_;
};

// XXH3-128, digest big-endian as xxh128sum prints it: what fs.writer's hash = "xxh128" stores, so
// bytes hashed while they stream elsewhere (blob storage on S3) get the same metadata.
class Xxh128Hasher final : public Hasher {
 public:
  Xxh128Hasher() : state_(XXH3_createState()) {
    if (state_ && XXH3_128bits_reset(state_.get()) != XXH_OK) state_.reset();
  }
  // False when libxxhash could not allocate its state (a Lua error must not cross a constructor).
  bool ready() const { return state_ != nullptr; }

  void update(const unsigned char* data, size_t size) override {
    XXH3_128bits_update(state_.get(), data, size);
  }
  size_t finish(unsigned char* out) override {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_.get()));
    std::memcpy(out, canonical.digest, sizeof canonical.digest);
    return sizeof canonical.digest;
  }

 private:
  struct Free {
    void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
  };
  std::unique_ptr<XXH3_state_t, Free> state_;
};

// A new hasher whose library state could be set up, or null (out of memory).
template <typename SomeHasher>
Hasher* new_ready_hasher() {
  auto* hasher = new (std::nothrow) SomeHasher();
  if (hasher != nullptr && !hasher->ready()) {
    delete hasher;
    return nullptr;
  }
  return hasher;
}

// ---------------------------------------------------------------------------------------------
// Argument checking. Messages name the function and the argument: "crypto.hex: bytes must be a
// string".

struct Bytes {
  const unsigned char* data;
  size_t size;
};

Bytes check_bytes(lua_State* L, int index, const char* function, const char* argument) {
  std::string_view text = check_string_view(L, index, function, argument);
  return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

// libsodium's crypto_generichash_BYTES_MIN (16) is a recommendation; BLAKE2b itself, libsodium's
// functions and Python's hashlib accept any digest size from 1.
constexpr size_t kBlake2bMinDigestSize = 1;

struct Blake2bOptions {
  size_t digest_size = crypto_generichash_blake2b_BYTES_MAX;
  Bytes key = {nullptr, 0};  // points into the options table, which stays on the stack
};

Blake2bOptions check_blake2b_options(lua_State* L, int index, const char* function) {
  Blake2bOptions options;
  if (!check_options(L, index, function, {"size", "key"})) return options;
  lua_getfield(L, index, "size");
  options.digest_size = static_cast<size_t>(
      optional_integer(L, -1, function, "size", crypto_generichash_blake2b_BYTES_MAX,
                       kBlake2bMinDigestSize, crypto_generichash_blake2b_BYTES_MAX));
  lua_pop(L, 1);
  lua_getfield(L, index, "key");
  if (!lua_isnil(L, -1)) {
    options.key = check_bytes(L, -1, function, "key");
    if (options.key.size > crypto_generichash_blake2b_KEYBYTES_MAX) {
      luaL_error(L, "%s: key must be at most %d bytes", function,
                 static_cast<int>(crypto_generichash_blake2b_KEYBYTES_MAX));
    }
  }
  lua_pop(L, 1);
  return options;
}

// Memory owned by the Lua GC (pushed on the stack), so a Lua error cannot leak it.
unsigned char* push_scratch(lua_State* L, size_t size) {
  return static_cast<unsigned char*>(lua_newuserdata(L, size == 0 ? 1 : size));
}

void push_bytes(lua_State* L, const unsigned char* data, size_t size) {
  lua_pushlstring(L, reinterpret_cast<const char*>(data), size);
}

void push_hex(lua_State* L, const unsigned char* data, size_t size) {
  char* hex = reinterpret_cast<char*>(push_scratch(L, size * 2 + 1));
  sodium_bin2hex(hex, size * 2 + 1, data, size);
  lua_pushlstring(L, hex, size * 2);
  lua_remove(L, -2);
}

void push_base64(lua_State* L, const unsigned char* data, size_t size, int variant) {
  size_t capacity = sodium_base64_ENCODED_LEN(size, variant);
  char* text = reinterpret_cast<char*>(push_scratch(L, capacity));
  sodium_bin2base64(text, capacity, data, size, variant);
  lua_pushstring(L, text);
  lua_remove(L, -2);
}

// Pushes the decoded bytes, or nil and "<function>: invalid base64"; returns the result count.
int push_unbase64(lua_State* L, const char* function, Bytes text, int variant) {
  unsigned char* bytes = push_scratch(L, text.size / 4 * 3 + 3);
  size_t size;
  if (sodium_base642bin(bytes, text.size / 4 * 3 + 3, reinterpret_cast<const char*>(text.data),
                        text.size, nullptr, &size, nullptr, variant) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: invalid base64", function);
    return 2;
  }
  push_bytes(L, bytes, size);
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Hashing

// crypto.blake2b(data [, {size = 1..64, key = string}]) -> digest
//   BLAKE2b of `data` as raw bytes: `size` bytes (default 64, Python hashlib.blake2b's default),
//   keyed (a MAC) when `key` (0..64 bytes; "" means unkeyed) is given.
//   Where: anywhere; never yields.
//   Errors: data not a string, size out of range, key longer than 64 bytes, unknown option.
//   Example: crypto.hex(crypto.blake2b("1234567890"))  --> "68d6ef20..."
int lua_blake2b(lua_State* L) {
  Bytes data = check_bytes(L, 1, "crypto.blake2b", "data");
  Blake2bOptions options = check_blake2b_options(L, 2, "crypto.blake2b");
  unsigned char digest[crypto_generichash_blake2b_BYTES_MAX];
  crypto_generichash_blake2b(digest, options.digest_size, data.data, data.size, options.key.data,
                             options.key.size);
  push_bytes(L, digest, options.digest_size);
  return 1;
}

// crypto.sha256(data) -> digest
//   SHA-256 of `data`, 32 raw bytes.
//   Where: anywhere; never yields.
//   Errors: data not a string.
//   Example: crypto.hex(crypto.sha256("abc"))  --> "ba7816bf..."
int lua_sha256(lua_State* L) {
  Bytes data = check_bytes(L, 1, "crypto.sha256", "data");
  unsigned char digest[kSha256Size];
  if (!sha256_digest(data.data, data.size, digest))
    return luaL_error(L, "crypto.sha256: out of memory");
  push_bytes(L, digest, sizeof digest);
  return 1;
}

// crypto.hmac_sha256(key, data) -> mac
//   HMAC-SHA256 (RFC 2104) of `data` under `key` of any length, 32 raw bytes. Compare MACs with
//   crypto.equals, never with ==.
//   Where: anywhere; never yields.
//   Errors: key or data not a string.
//   Example: crypto.hex(crypto.hmac_sha256(secret, "v0:" .. ts .. ":" .. body))
int lua_hmac_sha256(lua_State* L) {
  Bytes key = check_bytes(L, 1, "crypto.hmac_sha256", "key");
  Bytes data = check_bytes(L, 2, "crypto.hmac_sha256", "data");
  crypto_auth_hmacsha256_state state;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&state, key.data, key.size);
  crypto_auth_hmacsha256_update(&state, data.data, data.size);
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof state);
  push_bytes(L, mac, sizeof mac);
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Streaming hashes: a userdata holding a Hasher until :final() (or the GC) frees it.

struct Stream {
  Hasher* hasher;    // nullptr once finalised
  const char* name;  // "blake2b_stream", "sha256_stream" or "xxh128_stream", for error messages
};

// Pushes a stream named `name` (not owned: a string literal) with no hasher yet; the caller gives
// it one. Creating the userdata first means the GC owns the hasher from the moment it exists.
Stream* push_stream(lua_State* L, const char* name) {
  auto* stream = static_cast<Stream*>(lua_newuserdata(L, sizeof(Stream)));
  *stream = {nullptr, name};
  luaL_getmetatable(L, kStreamMetatable);
  lua_setmetatable(L, -2);
  return stream;
}

// crypto.blake2b_stream([{size = 1..64, key = string}]) -> stream
//   An incremental BLAKE2b with the same options as crypto.blake2b; feed it with
//   stream:update(data) and finish with stream:final() or stream:hexfinal().
//   Where: anywhere; never yields.
//   Errors: as crypto.blake2b's options; "out of memory".
//   Example: crypto.blake2b_stream({size = 32}):update(a):update(b):hexfinal()
int lua_blake2b_stream(lua_State* L) {
  Blake2bOptions options = check_blake2b_options(L, 1, "crypto.blake2b_stream");
  Stream* stream = push_stream(L, "blake2b_stream");
  stream->hasher =
      new (std::nothrow) Blake2bHasher(options.digest_size, options.key.data, options.key.size);
  if (stream->hasher == nullptr) return luaL_error(L, "crypto.blake2b_stream: out of memory");
  return 1;
}

// crypto.sha256_stream() -> stream
//   An incremental SHA-256; methods as for crypto.blake2b_stream.
//   Where: anywhere; never yields.
//   Errors: "out of memory".
//   Example: local h = crypto.sha256_stream(); for chunk in chunks do h:update(chunk) end
//            local digest = h:final()
int lua_sha256_stream(lua_State* L) {
  Stream* stream = push_stream(L, "sha256_stream");
  stream->hasher = new_ready_hasher<Sha256Hasher>();
  if (stream->hasher == nullptr) return luaL_error(L, "crypto.sha256_stream: out of memory");
  return 1;
}

// crypto.xxh128_stream() -> stream
//   An incremental XXH3-128 (16 bytes; hexfinal as xxh128sum prints it): a fast checksum against
//   corruption, not a cryptographic hash. Methods as for crypto.blake2b_stream.
//   Where: anywhere; never yields.
//   Errors: "out of memory".
//   Example: crypto.xxh128_stream():update("abc"):hexfinal()  --> "06b05ab6733a6185..."
int lua_xxh128_stream(lua_State* L) {
  Stream* stream = push_stream(L, "xxh128_stream");
  stream->hasher = new_ready_hasher<Xxh128Hasher>();
  if (stream->hasher == nullptr) return luaL_error(L, "crypto.xxh128_stream: out of memory");
  return 1;
}

// The stream at argument 1 that is still open; raises "<name>:<method>: stream already
// finalised" otherwise.
Stream& check_open_stream(lua_State* L, const char* method) {
  auto* stream = static_cast<Stream*>(luaL_checkudata(L, 1, kStreamMetatable));
  if (stream->hasher == nullptr) {
    luaL_error(L, "%s:%s: stream already finalised", stream->name, method);
  }
  return *stream;
}

// Finishes the stream at argument 1 into `digest` (Hasher::kMaxDigestSize bytes) and frees its
// state; returns the digest size.
size_t finish_stream(lua_State* L, const char* method, unsigned char* digest) {
  Stream& stream = check_open_stream(L, method);
  size_t size = stream.hasher->finish(digest);
  delete stream.hasher;
  stream.hasher = nullptr;
  return size;
}

// stream:update(data) -> stream
//   Feeds `data` to the hash; returns the stream so calls chain.
//   Where: anywhere; never yields.
//   Errors: data not a string; stream already finalised.
int stream_update(lua_State* L) {
  Stream& stream = check_open_stream(L, "update");
  char argument[64];
  snprintf(argument, sizeof argument, "%s:update", stream.name);
  Bytes data = check_bytes(L, 2, argument, "data");
  stream.hasher->update(data.data, data.size);
  lua_settop(L, 1);
  return 1;
}

// stream:final() -> digest
//   The raw digest. The stream is spent afterwards: any further call raises.
//   Where: anywhere; never yields.
//   Errors: stream already finalised.
int stream_final(lua_State* L) {
  unsigned char digest[Hasher::kMaxDigestSize];
  size_t size = finish_stream(L, "final", digest);
  push_bytes(L, digest, size);
  return 1;
}

// stream:hexfinal() -> hex digest
//   stream:final() in lowercase hex.
//   Where: anywhere; never yields.
//   Errors: stream already finalised.
int stream_hexfinal(lua_State* L) {
  unsigned char digest[Hasher::kMaxDigestSize];
  size_t size = finish_stream(L, "hexfinal", digest);
  push_hex(L, digest, size);
  return 1;
}

int stream_gc(lua_State* L) {
  auto* stream = static_cast<Stream*>(luaL_checkudata(L, 1, kStreamMetatable));
  delete stream->hasher;
  stream->hasher = nullptr;
  return 0;
}

int stream_tostring(lua_State* L) {
  auto* stream = static_cast<Stream*>(luaL_checkudata(L, 1, kStreamMetatable));
  lua_pushfstring(L, "crypto.%s (%s): %p", stream->name, stream->hasher ? "open" : "finalised",
                  static_cast<void*>(stream));
  return 1;
}

void create_stream_metatable(lua_State* L) {
  const luaL_Reg methods[] = {
      {"update", stream_update},
      {"final", stream_final},
      {"hexfinal", stream_hexfinal},
      {nullptr, nullptr},
  };
  define_metatable(L, kStreamMetatable, methods, stream_gc, stream_tostring);
}

// ---------------------------------------------------------------------------------------------
// Randomness and comparison

// crypto.random_bytes(n) -> bytes
//   `n` bytes from the operating system's CSPRNG (n = 0 gives "").
//   Where: anywhere; never yields.
//   Errors: n not an integer 0..1073741824 (1 GiB).
//   Example: local salt = crypto.random_bytes(16)
int lua_random_bytes(lua_State* L) {
  auto size = static_cast<size_t>(check_integer(L, 1, "crypto.random_bytes", "n", 0, 1 << 30));
  unsigned char* bytes = push_scratch(L, size);
  randombytes_buf(bytes, size);
  push_bytes(L, bytes, size);
  return 1;
}

// crypto.token([nbytes = 32]) -> string
//   `nbytes` random bytes as URL-safe base64 without padding: ceil(nbytes * 4 / 3) characters of
//   A-Z a-z 0-9 - _. Suitable for session ids, API keys, CSRF tokens.
//   Where: anywhere; never yields.
//   Errors: nbytes not an integer 1..1024.
//   Example: local session_id = crypto.token()  --> 43 characters
int lua_token(lua_State* L) {
  auto size = static_cast<size_t>(optional_integer(L, 1, "crypto.token", "nbytes", 32, 1, 1024));
  unsigned char bytes[1024];
  randombytes_buf(bytes, size);
  push_base64(L, bytes, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return 1;
}

// crypto.equals(a, b) -> boolean
//   Whether two strings are equal, in time that depends only on their length, never on their
//   contents: use it for MACs, signatures and tokens. Strings of different lengths are unequal
//   (their lengths are not secret).
//   Where: anywhere; never yields.
//   Errors: a or b not a string.
//   Example: if not crypto.equals(expected_signature, given_signature) then ... end
int lua_equals(lua_State* L) {
  Bytes a = check_bytes(L, 1, "crypto.equals", "a");
  Bytes b = check_bytes(L, 2, "crypto.equals", "b");
  lua_pushboolean(L, a.size == b.size && sodium_memcmp(a.data, b.data, a.size) == 0);
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Codecs

// crypto.hex(bytes) -> string
//   Lowercase hexadecimal, two characters per byte.
//   Where: anywhere; never yields.
//   Errors: bytes not a string.
//   Example: crypto.hex("\1\255")  --> "01ff"
int lua_hex(lua_State* L) {
  Bytes bytes = check_bytes(L, 1, "crypto.hex", "bytes");
  push_hex(L, bytes.data, bytes.size);
  return 1;
}

// crypto.unhex(hex) -> bytes | nil, error
//   Decodes hexadecimal (either case, no separators or whitespace).
//   Returns nil and a message for an odd length or a non-hex character.
//   Where: anywhere; never yields.
//   Errors (raised): hex not a string.
//   Example: crypto.unhex("01FF")  --> "\1\255";  crypto.unhex("0g")  --> nil, "crypto.unhex: ..."
int lua_unhex(lua_State* L) {
  Bytes hex = check_bytes(L, 1, "crypto.unhex", "hex");
  for (size_t i = 0; i < hex.size; ++i) {
    if (!std::isxdigit(hex.data[i])) {
      lua_pushnil(L);
      lua_pushfstring(L, "crypto.unhex: not a hex digit at position %d", static_cast<int>(i) + 1);
      return 2;
    }
  }
  if (hex.size % 2 != 0) return push_failure(L, "crypto.unhex: odd number of hex digits");
  unsigned char* bytes = push_scratch(L, hex.size / 2);
  sodium_hex2bin(bytes, hex.size / 2, reinterpret_cast<const char*>(hex.data), hex.size, nullptr,
                 nullptr, nullptr);
  push_bytes(L, bytes, hex.size / 2);
  return 1;
}

// crypto.base64(bytes) -> string
//   Standard base64 (RFC 4648 §4: + and /) with = padding.
//   Where: anywhere; never yields.
//   Errors: bytes not a string.
//   Example: crypto.base64("hi?")  --> "aGk/"
int lua_base64(lua_State* L) {
  Bytes bytes = check_bytes(L, 1, "crypto.base64", "bytes");
  push_base64(L, bytes.data, bytes.size, sodium_base64_VARIANT_ORIGINAL);
  return 1;
}

// crypto.unbase64(text) -> bytes | nil, error
//   Decodes standard base64; padding is required, whitespace is not allowed.
//   Returns nil and "crypto.unbase64: invalid base64" for anything else.
//   Where: anywhere; never yields.
//   Errors (raised): text not a string.
//   Example: crypto.unbase64("aGk/")  --> "hi?"
int lua_unbase64(lua_State* L) {
  Bytes text = check_bytes(L, 1, "crypto.unbase64", "text");
  return push_unbase64(L, "crypto.unbase64", text, sodium_base64_VARIANT_ORIGINAL);
}

// crypto.base64url(bytes) -> string
//   URL-safe base64 (RFC 4648 §5: - and _) without padding, as JWTs use.
//   Where: anywhere; never yields.
//   Errors: bytes not a string.
//   Example: crypto.base64url("hi?")  --> "aGk_"
int lua_base64url(lua_State* L) {
  Bytes bytes = check_bytes(L, 1, "crypto.base64url", "bytes");
  push_base64(L, bytes.data, bytes.size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return 1;
}

// crypto.unbase64url(text) -> bytes | nil, error
//   Decodes URL-safe base64, with or without padding (if padded, the padding must be complete).
//   Returns nil and "crypto.unbase64url: invalid base64" for anything else.
//   Where: anywhere; never yields.
//   Errors (raised): text not a string.
//   Example: crypto.unbase64url("aGk_")  --> "hi?"
int lua_unbase64url(lua_State* L) {
  Bytes text = check_bytes(L, 1, "crypto.unbase64url", "text");
  bool padded = text.size > 0 && text.data[text.size - 1] == '=';
  return push_unbase64(
      L, "crypto.unbase64url", text,
      padded ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

// ---------------------------------------------------------------------------------------------
// Password hashing

// crypto.password_hash(password [, {ops = n, mem = bytes}]) -> hash
//   An argon2id hash with a random salt, as a self-describing string ("$argon2id$v=19$m=65536,
//   t=2,p=1$...") to store as is. Defaults: ops = 2, mem = 64 MiB (libsodium's "interactive").
//   Costs ~50-100 ms of CPU and `mem` bytes of memory: on the thread pool inside a task (the
//   task waits), on the calling thread elsewhere.
//   Where: anywhere.
//   Errors: password not a string; ops or mem out of libsodium's range; unknown option (raised);
//   out of memory (returns nil, "crypto.password_hash: ...").
//   Example: user.password = crypto.password_hash(form.password)
int lua_password_hash(lua_State* L) {
  Bytes password = check_bytes(L, 1, "crypto.password_hash", "password");
  PasswordLimits limits;
  if (check_options(L, 2, "crypto.password_hash", {"ops", "mem"})) {
    lua_getfield(L, 2, "ops");
    limits.ops = static_cast<unsigned long long>(
        optional_integer(L, -1, "crypto.password_hash", "ops", static_cast<double>(limits.ops),
                         crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_OPSLIMIT_MAX));
    lua_getfield(L, 2, "mem");
    limits.mem = static_cast<size_t>(optional_integer(
        L, -1, "crypto.password_hash", "mem", static_cast<double>(limits.mem),
        crypto_pwhash_MEMLIMIT_MIN, static_cast<double>(crypto_pwhash_MEMLIMIT_MAX)));
    lua_pop(L, 2);
  }
  std::string secret(reinterpret_cast<const char*>(password.data), password.size);
  return run_blocking(L, "crypto.password_hash", [secret, limits]() -> Task::Pusher {
    std::string hash = password_hash(secret, limits);  // throws PasswordHashError → nil, message
    return [hash](lua_State* co) {
      lua_pushlstring(co, hash.data(), hash.size());
      return 1;
    };
  });
}

// crypto.password_verify(hash, password) -> boolean
//   Whether `password` matches `hash` from crypto.password_hash; false for a malformed hash.
//   Costs as much as the hashing did; inside a task it runs on the thread pool (file top).
//   Where: anywhere.
//   Errors: hash or password not a string.
//   Example: if not crypto.password_verify(user.password, form.password) then reject() end
int lua_password_verify(lua_State* L) {
  Bytes hash = check_bytes(L, 1, "crypto.password_verify", "hash");
  Bytes password = check_bytes(L, 2, "crypto.password_verify", "password");
  std::string stored(reinterpret_cast<const char*>(hash.data), hash.size);
  std::string secret(reinterpret_cast<const char*>(password.data), password.size);
  return run_blocking(L, "crypto.password_verify", [stored, secret]() -> Task::Pusher {
    bool matches = password_verify(stored, secret);
    return [matches](lua_State* co) {
      lua_pushboolean(co, matches);
      return 1;
    };
  });
}

}  // namespace

int open_crypto(lua_State* L) {
  if (sodium_init() < 0) return luaL_error(L, "crypto: libsodium failed to initialise");
  create_stream_metatable(L);
  const luaL_Reg functions[] = {
      {"blake2b", lua_blake2b},
      {"sha256", lua_sha256},
      {"hmac_sha256", lua_hmac_sha256},
      {"blake2b_stream", lua_blake2b_stream},
      {"sha256_stream", lua_sha256_stream},
      {"xxh128_stream", lua_xxh128_stream},
      {"random_bytes", lua_random_bytes},
      {"token", lua_token},
      {"equals", lua_equals},
      {"hex", lua_hex},
      {"unhex", lua_unhex},
      {"base64", lua_base64},
      {"unbase64", lua_unbase64},
      {"base64url", lua_base64url},
      {"unbase64url", lua_unbase64url},
      {"password_hash", lua_password_hash},
      {"password_verify", lua_password_verify},
      {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  add_jwk_functions(L);
  return 1;
}

}  // namespace depot
