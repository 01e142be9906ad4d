// Tests of crypto.jwk_verify and crypto.jwk_sign (bindings/crypto_jwk.cpp) with the stub
// provider's test keys (tests/stubs/oidc/test_keys.json): signatures made by Python's
// `cryptography` verify, Depot's own verify, a changed byte does not, and malformed keys, wrong
// key types and unknown algorithms are refused with a message instead of an error.
#include <catch2/catch.hpp>
#include <string>

#include "tests/support/lua_fixture.hpp"

namespace {

using Catch::Matchers::Contains;
using depot::testing::LuaFixture;

const std::string kPrelude = R"(
local crypto = require "crypto"
local json = require "json"
local file = assert(io.open(")" DEPOT_SOURCE_DIR R"(/tests/stubs/oidc/test_keys.json"))
local keys = {}
for _, key in ipairs(json.decode(file:read("*a")).keys) do keys[key.kid] = key end
file:close()
local rsa, ec = keys["test-rsa"], keys["test-ec"]
local function public(key)
  local out = {}
  for _, name in ipairs({ "kty", "n", "e", "crv", "x", "y" }) do out[name] = key[name] end
  return out
end
local input = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UifQ"
-- Made with Python's cryptography (PKCS#1 v1.5 over SHA-256; ECDSA P-256 as r || s).
local python_rs256 = crypto.unbase64url("NezXyu3D8k8MASAiF6QB4gVaAtvb-JYvS_kVvJX_xcGIbfUarexMhRQSyDMzjJAMixGGDJQbD3-fgbGpC9BZ8T5OFXLXXQA1dHdVRF8p5XAi3iw5ybE-fnbjw82WfwrZ_VhyJRhR0kL1J7i2b2xSgAx57EbfTWjUbaEb6KdftFKv81WOQr_OFo8ax1HFPEInmvGd6_XMagKRZKtzGRa1Ky66DeZrX9WjSnkGSsUYMxtbYd7IgsBkhrR1YI6fernHlOYegLzzGTlcRmrzp52hPz5zRzFyaDq_RtA5Z8hFEaSqxMkhmSVHNjZMatq1G2kUxM2Stl7DLHlpfU-fNlM2VA")
local python_es256 = crypto.unbase64url("Bz8KmtWgdZ2f3vERxGTf7UWiEVLnIyfS6yA0ACzSkMQW8wvGnxvSgpDXsqhQBxNOcADphaU7DW7HlrfyXQS1xQ")
local function flipped(bytes) return string.char((bytes:byte(1) + 1) % 256) .. bytes:sub(2) end
)";

std::string eval(LuaFixture& lua, const std::string& expression) {
  return lua.eval(kPrelude + "return " + expression);
}
std::string run(LuaFixture& lua, const std::string& code) {
  return lua.run(kPrelude + code);
}

}  // namespace

TEST_CASE("crypto.jwk_verify accepts RS256 and ES256 signatures made elsewhere", "[crypto][jwk]") {
  LuaFixture lua;
  CHECK(eval(lua, "crypto.jwk_verify(public(rsa), 'RS256', input, python_rs256)") == "true");
  CHECK(eval(lua, "crypto.jwk_verify(public(ec), 'ES256', input, python_es256)") == "true");
  CHECK(eval(lua, "crypto.jwk_verify(public(rsa), 'RS256', input .. 'x', python_rs256)") ==
        "false");
  CHECK(eval(lua, "crypto.jwk_verify(public(rsa), 'RS256', input, flipped(python_rs256))") ==
        "false");
  CHECK(eval(lua, "crypto.jwk_verify(public(ec), 'ES256', input, flipped(python_es256))") ==
        "false");
  CHECK(eval(lua, "crypto.jwk_verify(public(ec), 'ES256', input, python_es256:sub(2))") == "false");
}

TEST_CASE("crypto.jwk_sign makes signatures jwk_verify and the deterministic RS256 vector agree on",
          "[crypto][jwk]") {
  LuaFixture lua;
  // PKCS#1 v1.5 is deterministic: the same bytes as Python's.
  CHECK(eval(lua, "crypto.jwk_sign(rsa, 'RS256', input) == python_rs256") == "true");
  CHECK(eval(lua,
             "crypto.jwk_verify(public(ec), 'ES256', 'hello', crypto.jwk_sign(ec, 'ES256', "
             "'hello'))") == "true");
  CHECK(eval(lua, "#crypto.jwk_sign(ec, 'ES256', 'hello')") == "64");
  CHECK(eval(lua, "select(2, crypto.jwk_sign(public(rsa), 'RS256', 'hello'))") ==
        "crypto.jwk_sign: jwk.d must be a base64url string");
}

TEST_CASE("crypto.jwk_verify refuses unknown algorithms, mismatched and malformed keys",
          "[crypto][jwk]") {
  LuaFixture lua;
  CHECK(eval(lua, "select(2, crypto.jwk_verify(public(rsa), 'none', input, ''))") ==
        "crypto.jwk_verify: unsupported alg \"none\" (RS256 or ES256)");
  CHECK(eval(lua, "select(2, crypto.jwk_verify(public(rsa), 'HS256', input, ''))") ==
        "crypto.jwk_verify: unsupported alg \"HS256\" (RS256 or ES256)");
  CHECK(eval(lua, "select(2, crypto.jwk_verify(public(ec), 'RS256', input, python_rs256))") ==
        "crypto.jwk_verify: RS256 needs a key with kty \"RSA\"");
  CHECK(eval(lua, "select(2, crypto.jwk_verify(public(rsa), 'ES256', input, python_es256))") ==
        "crypto.jwk_verify: ES256 needs a key with kty \"EC\" and crv \"P-256\"");
  CHECK(
      eval(lua,
           "select(2, crypto.jwk_verify({kty = 'RSA', e = 'AQAB', n = 42}, 'RS256', input, ''))") ==
      "crypto.jwk_verify: jwk.n must be a base64url string");
  CHECK(eval(lua,
             "select(2, crypto.jwk_verify({kty = 'RSA', e = 'AQAB', n = "
             "'wiBPRzcnu5xTdd0xoaE2SEW8gXVw6chk5Fd8sFw1iEtDfdDXDyOCi2KlyTXlWCE7keqZueunx7AJlq72YcBy"
             "5nJa619hcxMsGD3Kk9f8HhYQLbFm40a70vRR5G2oo3H-z962k8of5Z_"
             "Mww0RWYHMOoc6Av2D49Kd34xBBEfzbHM'}, 'RS256', input, ''))") ==
        "crypto.jwk_verify: RSA keys must have at least 2048 bits");
  // x with y + 1: a point off the curve.
  CHECK(
      eval(
          lua,
          "select(2, crypto.jwk_verify({kty = 'EC', crv = 'P-256', x = ec.x, y = "
          "crypto.base64url(flipped(crypto.unbase64url(ec.y)))}, 'ES256', input, python_es256))") ==
      "crypto.jwk_verify: the key is not a point on P-256");
  CHECK(eval(lua,
             "select(2, crypto.jwk_verify({kty = 'EC', crv = 'P-256', x = 'AAAA', y = ec.y}, "
             "'ES256', input, python_es256))") ==
        "crypto.jwk_verify: jwk.x must be 32 bytes in base64url");
}

TEST_CASE("crypto.jwk_verify and jwk_sign raise on arguments of the wrong type", "[crypto][jwk]") {
  LuaFixture lua;
  CHECK_THAT(run(lua, "crypto.jwk_verify('key', 'RS256', input, '')"),
             Contains("crypto.jwk_verify: jwk must be a table"));
  CHECK_THAT(run(lua, "crypto.jwk_verify(rsa, 'RS256', input, 5)"),
             Contains("crypto.jwk_verify: signature must be a string"));
  CHECK_THAT(run(lua, "crypto.jwk_sign(rsa, 'RS256')"),
             Contains("crypto.jwk_sign: signing_input must be a string"));
}
