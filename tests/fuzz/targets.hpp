// The entry points the fuzz harnesses drive, one per target, shared with
// tests/engine/fuzz_regression_test.cpp so that saved findings and the seed corpus replay in every
// normal build. Each accepts any bytes. A defect is reported by throwing FuzzFinding (uncaught in a
// harness it aborts, which libFuzzer records as a crash) or by a sanitizer; a clean run returns.
#pragma once

#include <memory>
#include <stdexcept>
#include <string_view>

struct lua_State;

namespace depot::testing {
class LuaFixture;
class TestServer;
}  // namespace depot::testing

namespace depot::fuzz {

struct FuzzFinding : std::logic_error {
  using std::logic_error::logic_error;
};

// Raw bytes from a client to an embedded server (one worker, a few routes that read bodies in
// each way: whole, chunk by chunk, as multipart parts, as JSON; and stream answers), over a real
// loopback connection that then half-closes. The server must close the connection within a few
// seconds, and everything it sent must parse as a sequence of HTTP responses.
class HttpRequestTarget {
 public:
  HttpRequestTarget();
  ~HttpRequestTarget();
  void run(std::string_view input) const;

 private:
  std::unique_ptr<testing::TestServer> server_;
};

// The first line is a Content-Type value (or, when that yields no boundary, the boundary itself),
// the rest a body. The body is parsed whole, one byte at a time and in random pieces: every way
// must produce the same parts and data, or the same error.
void run_multipart_target(std::string_view input);

// json.decode, json.python_json and json.python_repr on the input. Decoding and the canonical
// rendering must agree on whether it is JSON; the canonical text must decode and render to itself;
// a decoded value that json.encode accepts must decode again.
class JsonTarget {
 public:
  JsonTarget();
  ~JsonTarget();
  void run(std::string_view input) const;

 private:
  std::unique_ptr<testing::LuaFixture> lua_;
  int check_ = 0;  // registry reference of the compiled checking chunk
};

}  // namespace depot::fuzz
