// The public-key half of Lua module `crypto`: JWS signatures (RS256, ES256) checked and made with
// keys given as JSON Web Keys (RFC 7517/7518), from OpenSSL's libcrypto. libsodium, which does the
// rest of `crypto`, has no RSA and no P-256, and those are what OpenID providers sign ID tokens
// with; OpenSSL is the kept, audited library Debian ships that has both (libcurl already links
// it). The user-facing manual is docs/lua-api.md (crypto, "Signatures with JSON Web Keys").
//
// A key comes from outside (a provider's JWKS), so a malformed one is a failure the caller handles
// (`nil, message`), never a raised error; only wrong argument types raise. Nothing here yields.
//
// Lua errors are raised only before any C++ object with a destructor exists (a Lua error longjmps):
// the key's members are read as views into strings kept on the Lua stack, and the work runs in
// plain C++ that returns its result (only pushing it could raise, when memory runs out).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/binding.hpp"

namespace depot {
namespace {

// RSA keys shorter than this are refused: RFC 7518 §3.3 requires 2048 bits for RS256.
constexpr int kMinRsaBits = 2048;
constexpr size_t kP256CoordinateBytes = 32;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyContextFree {
  void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};
struct DigestContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
struct BignumFree {
  void operator()(BIGNUM* number) const { BN_clear_free(number); }
};
struct ParamBuildFree {
  void operator()(OSSL_PARAM_BLD* build) const { OSSL_PARAM_BLD_free(build); }
};
struct ParamsFree {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct EcdsaSignatureFree {
  void operator()(ECDSA_SIG* signature) const { ECDSA_SIG_free(signature); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bignum = std::unique_ptr<BIGNUM, BignumFree>;

// A JWS algorithm this module knows: its key type and, for ECDSA, the curve.
enum class Algorithm { kRs256, kEs256 };

std::optional<Algorithm> algorithm_named(std::string_view name) {
  if (name == "RS256") return Algorithm::kRs256;
  if (name == "ES256") return Algorithm::kEs256;
  return std::nullopt;
}

// The members of a JWK this module reads; empty views for absent ones. They point into strings
// on the Lua stack.
struct JwkMembers {
  std::string_view kty, crv, n, e, x, y, d, p, q, dp, dq, qi;
};

// A work result: the bytes, or what went wrong (`error` non-empty).
struct Outcome {
  std::string bytes;
  std::string error;
  bool verified = false;
};

std::optional<std::string> unbase64url(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t size = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &size, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return std::nullopt;
  }
  out.resize(size);
  return out;
}

// A member decoded into a big-endian integer; throws with the member's name.
Bignum member_number(std::string_view text, const char* name) {
  auto bytes = text.empty() ? std::nullopt : unbase64url(text);
  if (!bytes) throw std::runtime_error(std::string("jwk.") + name + " must be a base64url string");
  Bignum number(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes->data()),
                          static_cast<int>(bytes->size()), nullptr));
  if (!number) throw std::runtime_error("out of memory");
  return number;
}

std::string member_bytes(std::string_view text, const char* name, size_t size) {
  auto bytes = text.empty() ? std::nullopt : unbase64url(text);
  if (!bytes || bytes->size() != size) {
    throw std::runtime_error(std::string("jwk.") + name + " must be " + std::to_string(size) +
                             " bytes in base64url");
  }
  return *bytes;
}

// The key `members` describes, public only or with its private part, as OpenSSL's EVP_PKEY.
// Throws std::runtime_error saying what is wrong with the key.
Pkey key_from(const JwkMembers& members, Algorithm algorithm, bool with_private) {
  std::unique_ptr<OSSL_PARAM_BLD, ParamBuildFree> build(OSSL_PARAM_BLD_new());
  if (!build) throw std::runtime_error("out of memory");
  std::vector<Bignum> numbers;  // must outlive the params built from them
  auto push_number = [&](const char* param, std::string_view text, const char* name) {
    numbers.push_back(member_number(text, name));
    OSSL_PARAM_BLD_push_BN(build.get(), param, numbers.back().get());
  };
  const char* type;
  std::string point;
  if (algorithm == Algorithm::kRs256) {
    if (members.kty != "RSA") throw std::runtime_error("RS256 needs a key with kty \"RSA\"");
    type = "RSA";
    push_number(OSSL_PKEY_PARAM_RSA_N, members.n, "n");
    push_number(OSSL_PKEY_PARAM_RSA_E, members.e, "e");
    if (with_private) {
      push_number(OSSL_PKEY_PARAM_RSA_D, members.d, "d");
      push_number(OSSL_PKEY_PARAM_RSA_FACTOR1, members.p, "p");
      push_number(OSSL_PKEY_PARAM_RSA_FACTOR2, members.q, "q");
      push_number(OSSL_PKEY_PARAM_RSA_EXPONENT1, members.dp, "dp");
      push_number(OSSL_PKEY_PARAM_RSA_EXPONENT2, members.dq, "dq");
      push_number(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, members.qi, "qi");
    }
  } else {
    if (members.kty != "EC" || members.crv != "P-256") {
      throw std::runtime_error("ES256 needs a key with kty \"EC\" and crv \"P-256\"");
    }
    type = "EC";
    // An uncompressed SEC1 point: 0x04, then x and y.
    point = "\x04" + member_bytes(members.x, "x", kP256CoordinateBytes) +
            member_bytes(members.y, "y", kP256CoordinateBytes);
    OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                     point.size());
    if (with_private) push_number(OSSL_PKEY_PARAM_PRIV_KEY, members.d, "d");
  }
  std::unique_ptr<OSSL_PARAM, ParamsFree> params(OSSL_PARAM_BLD_to_param(build.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyContextFree> context(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !context || EVP_PKEY_fromdata_init(context.get()) <= 0 ||
      EVP_PKEY_fromdata(context.get(), &raw, with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) <= 0) {
    // Decoding the point checks it is on the curve (what invalid-curve attacks rely on skipping).
    throw std::runtime_error(algorithm == Algorithm::kEs256 ? "the key is not a point on P-256"
                                                            : "the members do not make an RSA key");
  }
  Pkey key(raw);
  if (algorithm == Algorithm::kRs256 && EVP_PKEY_get_bits(key.get()) < kMinRsaBits) {
    throw std::runtime_error("RSA keys must have at least 2048 bits");
  }
  return key;
}

// JWS's ECDSA signature is r and s, 32 bytes each (RFC 7518 §3.4); OpenSSL's is DER.
std::optional<std::string> der_from_raw(std::string_view raw) {
  if (raw.size() != 2 * kP256CoordinateBytes) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSignatureFree> signature(ECDSA_SIG_new());
  BIGNUM* r =
      BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), kP256CoordinateBytes, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + kP256CoordinateBytes,
                        kP256CoordinateBytes, nullptr);
  if (!signature || !r || !s || ECDSA_SIG_set0(signature.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  int size = i2d_ECDSA_SIG(signature.get(), &der);
  if (size <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(size));
  OPENSSL_free(der);
  return out;
}

std::optional<std::string> raw_from_der(const std::string& der) {
  const unsigned char* cursor = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSignatureFree> signature(
      d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der.size())));
  if (!signature) return std::nullopt;
  std::string out(2 * kP256CoordinateBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(signature.get()), bytes, kP256CoordinateBytes) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(signature.get()), bytes + kP256CoordinateBytes,
                   kP256CoordinateBytes) < 0) {
    return std::nullopt;
  }
  return out;
}

// A refused key or signature leaves entries in this thread's OpenSSL error queue, which libcurl
// reads to explain a failed TLS handshake on the same thread: they must not linger there.
void clear_openssl_errors() {
  ERR_clear_error();
}

Outcome verify(const JwkMembers& members, Algorithm algorithm, std::string_view input,
               std::string_view signature) {
  Outcome outcome;
  try {
    Pkey key = key_from(members, algorithm, false);
    std::string der;
    if (algorithm == Algorithm::kEs256) {
      auto converted = der_from_raw(signature);
      if (!converted) return outcome;  // not 64 bytes: it cannot verify
      der = std::move(*converted);
      signature = der;
    }
    std::unique_ptr<EVP_MD_CTX, DigestContextFree> context(EVP_MD_CTX_new());
    if (!context ||
        EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
      throw std::runtime_error("OpenSSL could not start verifying");
    }
    outcome.verified =
        EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) == 1;
  } catch (const std::exception& error) {
    outcome.error = error.what();
  }
  clear_openssl_errors();
  return outcome;
}

Outcome sign(const JwkMembers& members, Algorithm algorithm, std::string_view input) {
  Outcome outcome;
  try {
    Pkey key = key_from(members, algorithm, true);
    std::unique_ptr<EVP_MD_CTX, DigestContextFree> context(EVP_MD_CTX_new());
    size_t size = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (!context ||
        EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_DigestSign(context.get(), nullptr, &size, data, input.size()) != 1) {
      throw std::runtime_error("OpenSSL could not sign");
    }
    std::string signature(size, '\0');
    if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                       data, input.size()) != 1) {
      throw std::runtime_error("OpenSSL could not sign");
    }
    signature.resize(size);
    if (algorithm == Algorithm::kEs256) {
      auto raw = raw_from_der(signature);
      if (!raw) throw std::runtime_error("OpenSSL made a malformed ECDSA signature");
      signature = std::move(*raw);
    }
    outcome.bytes = std::move(signature);
  } catch (const std::exception& error) {
    outcome.error = error.what();
  }
  clear_openssl_errors();
  return outcome;
}

// Reads the string members of the JWK table at `index`, leaving them on the stack (the views
// point into them). A non-string member reads as absent, so the key is refused as malformed.
JwkMembers read_members(lua_State* L, int index) {
  struct Field {
    const char* name;
    std::string_view JwkMembers::*member;
  };
  static const Field kFields[] = {
      {"kty", &JwkMembers::kty}, {"crv", &JwkMembers::crv}, {"n", &JwkMembers::n},
      {"e", &JwkMembers::e},     {"x", &JwkMembers::x},     {"y", &JwkMembers::y},
      {"d", &JwkMembers::d},     {"p", &JwkMembers::p},     {"q", &JwkMembers::q},
      {"dp", &JwkMembers::dp},   {"dq", &JwkMembers::dq},   {"qi", &JwkMembers::qi},
  };
  luaL_checkstack(L, static_cast<int>(sizeof kFields / sizeof kFields[0]), "crypto: JWK members");
  JwkMembers members;
  for (const Field& field : kFields) {
    lua_getfield(L, index, field.name);
    size_t size = 0;
    const char* text = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &size) : nullptr;
    if (text != nullptr) members.*field.member = std::string_view(text, size);
  }
  return members;
}

void check_jwk(lua_State* L, const char* function) {
  if (lua_type(L, 1) != LUA_TTABLE) luaL_error(L, "%s: jwk must be a table", function);
}

int push_unknown_algorithm(lua_State* L, const char* function, std::string_view name) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: unsupported alg \"%s\" (RS256 or ES256)", function,
                  std::string(name).c_str());
  return 2;
}

// crypto.jwk_verify(jwk, alg, signing_input, signature) -> boolean | nil, message
//   Whether `signature` (raw bytes, as base64url-decoded from a JWS) is `alg`'s signature of
//   `signing_input` under the public key `jwk` (a table: kty "RSA" with n, e; or kty "EC",
//   crv "P-256", x, y). false: the signature does not verify. nil, message: the algorithm is not
//   RS256 or ES256, or the key does not fit it or is malformed (RSA under 2048 bits, a point off
//   the curve).
//   Where: anywhere; never yields.
//   Errors (raised): jwk not a table; alg, signing_input or signature not strings.
//   Example: crypto.jwk_verify(key, "RS256", header .. "." .. payload, crypto.unbase64url(sig))
int lua_jwk_verify(lua_State* L) {
  const char* function = "crypto.jwk_verify";
  check_jwk(L, function);
  std::string_view name = check_string_view(L, 2, function, "alg");
  std::string_view input = check_string_view(L, 3, function, "signing_input");
  std::string_view signature = check_string_view(L, 4, function, "signature");
  auto algorithm = algorithm_named(name);
  if (!algorithm) return push_unknown_algorithm(L, function, name);
  JwkMembers members = read_members(L, 1);
  {
    Outcome outcome = verify(members, *algorithm, input, signature);
    if (outcome.error.empty()) {
      lua_pushboolean(L, outcome.verified);
      return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", function, outcome.error.c_str());
  }
  return 2;
}

// crypto.jwk_sign(jwk, alg, signing_input) -> signature | nil, message
//   `alg`'s signature of `signing_input` (raw bytes: r and s for ES256) under the private key
//   `jwk` (RSA: n, e, d, p, q, dp, dq, qi; EC P-256: x, y, d). For test identity providers and
//   services issuing their own RS256/ES256 tokens.
//   Where: anywhere; never yields.
//   Errors (raised): jwk not a table; alg or signing_input not strings. A malformed key or an
//   unknown algorithm: nil, message.
//   Example: crypto.base64url(crypto.jwk_sign(private_key, "ES256", signing_input))
int lua_jwk_sign(lua_State* L) {
  const char* function = "crypto.jwk_sign";
  check_jwk(L, function);
  std::string_view name = check_string_view(L, 2, function, "alg");
  std::string_view input = check_string_view(L, 3, function, "signing_input");
  auto algorithm = algorithm_named(name);
  if (!algorithm) return push_unknown_algorithm(L, function, name);
  JwkMembers members = read_members(L, 1);
  {
    Outcome outcome = sign(members, *algorithm, input);
    if (outcome.error.empty()) {
      lua_pushlstring(L, outcome.bytes.data(), outcome.bytes.size());
      return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", function, outcome.error.c_str());
  }
  return 2;
}

}  // namespace

void add_jwk_functions(lua_State* L) {
  lua_pushcfunction(L, lua_jwk_verify);
  lua_setfield(L, -2, "jwk_verify");
  lua_pushcfunction(L, lua_jwk_sign);
  lua_setfield(L, -2, "jwk_sign");
}

}  // namespace depot
