// Tests of the Lua module `crypto` (bindings/crypto.cpp) against published and Python-computed
// vectors, plus its error messages.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/test_server.hpp"

namespace {

using Catch::Matchers::Contains;
using depot::testing::LuaFixture;

// Evaluates a Lua expression with `crypto` in scope and returns it through tostring().
std::string eval(LuaFixture& lua, const std::string& expression) {
  return lua.eval("local crypto = require \"crypto\"\nreturn " + expression);
}

// Runs Lua statements with `crypto` in scope; returns "" or the error message.
std::string run(LuaFixture& lua, const std::string& code) {
  return lua.run("local crypto = require \"crypto\"\n" + code);
}

}  // namespace

TEST_CASE("crypto.blake2b matches the file-cache spec vectors", "[crypto]") {
  LuaFixture lua;
  // specs/file-cache.md §1.2 (upstream test_hash)
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('1234567890'))") ==
        "68d6ef20266276f163541b9db63db73bc5e6351755b741dbf59c3dcdf6678951a65e0844e238d6d25ae7e4293f"
        "cf29f913d02cd68ba1925615865d1aaa50fe8e");
  CHECK(eval(lua, "crypto.hex(crypto.blake2b(string.rep('abcdefghij', 1000)))") ==
        "acbe8b86215c2d5a6bdcc9ccd98ccac597a9b43021dff12e3f805edf68cf2f379a53602b42fe79a6a5da1247a9"
        "ff979c90ff56f15b442c2dca5145ce5676a72b");
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('http://auth:5000:username\\n{\"xyz\": 123}'))") ==
        "4b573346e9f80b83f4045e7586df5a49d28175247af57be3d92aa3518a9cdaf6e48e31ca78dbfb250cc8b1cb47"
        "abe9e92baba070fcdda728ec4f607372de2708");
}

TEST_CASE("crypto.blake2b honours size and key", "[crypto]") {
  LuaFixture lua;
  // python3 -c "import hashlib; print(hashlib.blake2b(b'1234567890', digest_size=32).hexdigest())"
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('1234567890', {size = 32}))") ==
        "807f1ba73147c3a96c2d63b38dd5a5f514f66290a1436bb9821e9f2a72eff263");
  // python3 -c "import hashlib; print(hashlib.blake2b(b'1234567890',
  //   key=b'depot-test-key-0123456789abcdef!').hexdigest())"
  CHECK(
      eval(
          lua,
          "crypto.hex(crypto.blake2b('1234567890', {key = 'depot-test-key-0123456789abcdef!'}))") ==
      "576f36293d3f5a120616e9699a1e71fef2d2c79b78f52621f236d5051bee093598be3a8e6382dfda10ccc2fc7a"
      "20172c7de9a619460ac2c0062b06e5ede6ab60");
  // python3 -c "import hashlib; print(hashlib.blake2b(b'1234567890', digest_size=32,
  //   key=b'k').hexdigest())"
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('1234567890', {size = 32, key = 'k'}))") ==
        "b2adcc35569a6e5107fce67c23a5ced6a0e0606579fbf813caa5c9e8e4053052");
  // python3 -c "import hashlib; print(hashlib.blake2b(b'', digest_size=16).hexdigest())"
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('', {size = 16}))") ==
        "cae66941d9efbd404e4d88758ea67670");
  CHECK(eval(lua, "crypto.blake2b('x', {key = ''}) == crypto.blake2b('x')") == "true");
  // python3 -c "import hashlib; print(hashlib.blake2b(b'x', digest_size=1).hexdigest())"
  CHECK(eval(lua, "crypto.hex(crypto.blake2b('x', {size = 1}))") == "e2");
}

TEST_CASE("crypto.blake2b rejects bad arguments", "[crypto]") {
  LuaFixture lua;
  CHECK_THAT(run(lua, "crypto.blake2b('x', {size = 0})"),
             Contains("crypto.blake2b: size must be an integer 1..64"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', {size = 65})"), Contains("crypto.blake2b: size must"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', {size = 2.5})"), Contains("crypto.blake2b: size must"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', {key = string.rep('k', 65)})"),
             Contains("crypto.blake2b: key must be at most 64 bytes"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', {key = 12})"),
             Contains("crypto.blake2b: key must be a string"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', {digest_size = 32})"),
             Contains("crypto.blake2b: unknown option digest_size"));
  CHECK_THAT(run(lua, "crypto.blake2b('x', 32)"),
             Contains("crypto.blake2b: options must be a table"));
  CHECK_THAT(run(lua, "crypto.blake2b(nil)"), Contains("crypto.blake2b: data must be a string"));
  CHECK_THAT(run(lua, "crypto.blake2b_stream({size = 99})"),
             Contains("crypto.blake2b_stream: size must be an integer 1..64"));
}

TEST_CASE("crypto.sha256 and crypto.hmac_sha256 match published vectors", "[crypto]") {
  LuaFixture lua;
  // FIPS 180-2 appendix B.1, and the empty string
  CHECK(eval(lua, "crypto.hex(crypto.sha256('abc'))") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(eval(lua, "crypto.hex(crypto.sha256(''))") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // RFC 4231 test case 1
  CHECK(eval(lua, "crypto.hex(crypto.hmac_sha256(string.rep('\\11', 20), 'Hi There'))") ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // RFC 4231 test case 2
  CHECK(eval(lua, "crypto.hex(crypto.hmac_sha256('Jefe', 'what do ya want for nothing?'))") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: a 131-byte key, longer than the block, is hashed first
  CHECK(eval(lua,
             "crypto.hex(crypto.hmac_sha256(string.rep('\\170', 131), "
             "'Test Using Larger Than Block-Size Key - Hash Key First'))") ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK_THAT(run(lua, "crypto.hmac_sha256(nil, 'x')"),
             Contains("crypto.hmac_sha256: key must be a string"));
  CHECK_THAT(run(lua, "crypto.sha256({})"), Contains("crypto.sha256: data must be a string"));
}

TEST_CASE("crypto streams equal the one-shot hashes at any split points", "[crypto]") {
  LuaFixture lua;
  CHECK(run(lua, R"(
    math.randomseed(20240611)
    local data = crypto.random_bytes(1024 * 1024)
    local function split_feed(stream)
      local position = 1
      while position <= #data do
        -- mostly small pieces, sometimes empty ones, sometimes large ones
        local length = math.random(0, 3) == 0 and math.random(0, 200000) or math.random(0, 300)
        stream:update(data:sub(position, position + length - 1))
        position = position + length
      end
      return stream:final()
    end
    for trial = 1, 10 do
      assert(split_feed(crypto.blake2b_stream()) == crypto.blake2b(data), "blake2b " .. trial)
      assert(split_feed(crypto.sha256_stream()) == crypto.sha256(data), "sha256 " .. trial)
      local options = {size = 20, key = "stream key"}
      assert(split_feed(crypto.blake2b_stream(options)) == crypto.blake2b(data, options),
             "keyed blake2b " .. trial)
    end
  )") == "");
}

TEST_CASE("crypto streams chain, finish once, and check their arguments", "[crypto]") {
  LuaFixture lua;
  CHECK(
      eval(lua, "crypto.blake2b_stream({size = 32}):update('12345'):update('67890'):hexfinal()") ==
      "807f1ba73147c3a96c2d63b38dd5a5f514f66290a1436bb9821e9f2a72eff263");
  CHECK(eval(lua, "crypto.sha256_stream():hexfinal()") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK_THAT(run(lua, "local s = crypto.sha256_stream(); s:final(); s:final()"),
             Contains("sha256_stream:final: stream already finalised"));
  CHECK_THAT(run(lua, "local s = crypto.blake2b_stream(); s:hexfinal(); s:update('x')"),
             Contains("blake2b_stream:update: stream already finalised"));
  CHECK_THAT(run(lua, "crypto.sha256_stream():update(42)"),
             Contains("sha256_stream:update: data must be a string"));
  // a dot instead of a colon: the stream argument is missing
  CHECK_THAT(run(lua, "local s = crypto.sha256_stream(); s.update('x')"),
             Contains("depot.crypto.stream expected"));
  CHECK_THAT(eval(lua, "tostring(crypto.sha256_stream())"),
             Contains("crypto.sha256_stream (open)"));
  // abandoned streams are freed by the collector (run under ASan to see leaks)
  CHECK(run(lua, "for i = 1, 1000 do crypto.blake2b_stream():update('x') end collectgarbage()") ==
        "");
}

TEST_CASE("crypto hex and base64 codecs round-trip and reject bad input", "[crypto]") {
  LuaFixture lua;
  CHECK(eval(lua, "crypto.hex('\\1\\255\\0')") == "01ff00");
  CHECK(eval(lua, "crypto.unhex('01FFab') == '\\1\\255\\171'") == "true");
  CHECK(eval(lua, "crypto.hex('')") == "");
  CHECK(eval(lua, "crypto.unhex('')") == "");
  CHECK(eval(lua, "crypto.base64('hi?')") == "aGk/");
  CHECK(eval(lua, "crypto.base64('h')") == "aA==");
  CHECK(eval(lua, "crypto.base64url('hi?')") == "aGk_");
  CHECK(eval(lua, "crypto.base64url('h')") == "aA");
  CHECK(eval(lua, "crypto.unbase64('aA==')") == "h");
  CHECK(eval(lua, "crypto.unbase64url('aA')") == "h");
  CHECK(eval(lua, "crypto.unbase64url('aA==')") == "h");
  CHECK(eval(lua, "crypto.unbase64url('aGk_')") == "hi?");
  CHECK(run(lua, R"(
    for length = 0, 300 do
      local bytes = crypto.random_bytes(length)
      assert(crypto.unhex(crypto.hex(bytes)) == bytes, "hex " .. length)
      assert(crypto.unbase64(crypto.base64(bytes)) == bytes, "base64 " .. length)
      assert(crypto.unbase64url(crypto.base64url(bytes)) == bytes, "base64url " .. length)
    end
  )") == "");

  const char* const bad_inputs[][2] = {
      {"crypto.unhex('abc')", "crypto.unhex: odd number of hex digits"},
      {"crypto.unhex('0g')", "crypto.unhex: not a hex digit at position 2"},
      {"crypto.unhex('00 11')", "crypto.unhex: not a hex digit at position 3"},
      {"crypto.unbase64('aA')", "crypto.unbase64: invalid base64"},       // padding required
      {"crypto.unbase64('aGk_')", "crypto.unbase64: invalid base64"},     // URL-safe alphabet
      {"crypto.unbase64('aGk/\\n')", "crypto.unbase64: invalid base64"},  // whitespace
      {"crypto.unbase64('aB==')", "crypto.unbase64: invalid base64"},     // non-zero spare bits
      {"crypto.unbase64url('aGk/')", "crypto.unbase64url: invalid base64"},
      {"crypto.unbase64url('aA=')", "crypto.unbase64url: invalid base64"},  // incomplete padding
      {"crypto.unbase64url('a')", "crypto.unbase64url: invalid base64"},
  };
  for (const auto& [expression, message] : bad_inputs) {
    INFO(expression);
    CHECK(eval(lua, "select('#', " + std::string(expression) + ")") == "2");
    CHECK(eval(lua, "select(1, " + std::string(expression) + ")") == "nil");
    CHECK(eval(lua, "select(2, " + std::string(expression) + ")") == message);
  }
  CHECK_THAT(run(lua, "crypto.unhex(12)"), Contains("crypto.unhex: hex must be a string"));
  CHECK_THAT(run(lua, "crypto.base64(nil)"), Contains("crypto.base64: bytes must be a string"));
}

TEST_CASE("crypto.random_bytes and crypto.token", "[crypto]") {
  LuaFixture lua;
  CHECK(eval(lua, "#crypto.random_bytes(0)") == "0");
  CHECK(eval(lua, "#crypto.random_bytes(100)") == "100");
  CHECK(eval(lua, "crypto.random_bytes(32) ~= crypto.random_bytes(32)") == "true");
  CHECK(eval(lua, "#crypto.token()") == "43");
  CHECK(eval(lua, "#crypto.token(16)") == "22");
  CHECK(eval(lua, "#crypto.token(1)") == "2");
  CHECK(run(lua, R"(
    local seen = {}
    for i = 1, 200 do
      local token = crypto.token()
      assert(token:match("^[A-Za-z0-9_-]+$"), token)
      assert(not seen[token], "repeated token")
      seen[token] = true
    end
  )") == "");
  CHECK_THAT(run(lua, "crypto.random_bytes(-1)"),
             Contains("crypto.random_bytes: n must be an integer 0..1073741824"));
  CHECK_THAT(run(lua, "crypto.random_bytes()"), Contains("crypto.random_bytes: n must be"));
  CHECK_THAT(run(lua, "crypto.token(0)"),
             Contains("crypto.token: nbytes must be an integer 1..1024"));
  CHECK_THAT(run(lua, "crypto.token('32')"), Contains("crypto.token: nbytes must be"));
}

TEST_CASE("crypto.equals compares whole strings", "[crypto]") {
  LuaFixture lua;
  CHECK(eval(lua, "crypto.equals('secret', 'secret')") == "true");
  CHECK(eval(lua, "crypto.equals('secret', 'secreT')") == "false");
  CHECK(eval(lua, "crypto.equals('secret', 'secret ')") == "false");
  CHECK(eval(lua, "crypto.equals('', '')") == "true");
  CHECK(eval(lua, "crypto.equals('a\\0b', 'a\\0c')") == "false");
  CHECK_THAT(run(lua, "crypto.equals('x')"), Contains("crypto.equals: b must be a string"));
}

TEST_CASE("crypto.password_hash and crypto.password_verify", "[crypto]") {
  LuaFixture lua;
  // the smallest argon2id cost libsodium allows (crypto_pwhash_OPSLIMIT_MIN, MEMLIMIT_MIN): fast
  CHECK(run(lua, R"(
    local cheap = {ops = 1, mem = 8192}
    local hash = crypto.password_hash("correct horse", cheap)
    assert(hash:match("^%$argon2id%$v=19%$m=8,t=1,p=1%$"), hash)
    assert(crypto.password_verify(hash, "correct horse") == true)
    assert(crypto.password_verify(hash, "correct horsE") == false)
    assert(crypto.password_verify(hash, "") == false)
    assert(crypto.password_hash("correct horse", cheap) ~= hash, "salts differ")
    assert(crypto.password_verify("not a hash", "correct horse") == false)
    assert(crypto.password_verify("", "") == false)
    local empty = crypto.password_hash("", cheap)
    assert(crypto.password_verify(empty, "") == true)
    local binary = "pass\0word"
    assert(crypto.password_verify(crypto.password_hash(binary, cheap), binary) == true)
  )") == "");
  CHECK_THAT(run(lua, "crypto.password_hash('x', {ops = 0, mem = 8192})"),
             Contains("crypto.password_hash: ops must be an integer 1..4294967295"));
  CHECK_THAT(run(lua, "crypto.password_hash('x', {ops = 1, mem = 1024})"),
             Contains("crypto.password_hash: mem must be an integer 8192.."));
  CHECK_THAT(run(lua, "crypto.password_hash('x', {rounds = 3})"),
             Contains("crypto.password_hash: unknown option rounds"));
  CHECK_THAT(run(lua, "crypto.password_hash(nil)"),
             Contains("crypto.password_hash: password must be a string"));
  CHECK_THAT(run(lua, "crypto.password_verify('x', nil)"),
             Contains("crypto.password_verify: password must be a string"));
}

TEST_CASE("crypto.password_hash defaults to libsodium's interactive limits", "[crypto][slow]") {
  LuaFixture lua;
  CHECK(run(lua, R"(
    local hash = crypto.password_hash("hunter2")
    assert(hash:match("^%$argon2id%$v=19%$m=65536,t=2,p=1%$"), hash)
    assert(crypto.password_verify(hash, "hunter2"))
  )") == "");
}

TEST_CASE("password hashing in a request runs on the pool: other requests go on", "[crypto]") {
  depot::testing::TestServer server("app", R"LUA(
local crypto = require "crypto"
local service = ...
service:post("/hash", function(req)
  local hash = crypto.password_hash(req:body(), { ops = 3, mem = 64 * 1024 * 1024 })
  return { ok = crypto.password_verify(hash, req:body()), wrong = crypto.password_verify(hash, "nope") }
end)
service:get("/hello", function() return "hello" end)
)LUA");
  std::thread hashing([&] {
    CHECK(depot::testing::http_request(server.port(), "POST", "/hash", "s3cret").body ==
          R"({"ok":true,"wrong":false})");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto start = std::chrono::steady_clock::now();
  CHECK(depot::testing::http_request(server.port(), "GET", "/hello").body == "hello");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(50));
  hashing.join();
}
