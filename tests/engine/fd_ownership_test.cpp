// Every descriptor the engine opens is closed however the code that opened it ends: a Lua error
// in the middle of res:file, answers that send no file after all (HEAD, 304, 416), a client that
// goes away before its download is sent. Counted in /proc/self/fd: the server runs in this process.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using namespace depot::testing;
using namespace std::chrono_literals;

namespace {

const char* const kRoutes = R"LUA(
local service = ...
service:get("/file", function(req, res) assert(res:file(req.query.path)) end)
-- Raises while res:file reads its options, after it has opened the file.
service:get("/file-raising", function(req, res)
  res:file(req.query.path, setmetatable({}, { __index = function() error("options exploded") end }))
end)
)LUA";

size_t open_descriptors() {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

// Server-side closes follow the client's asynchronously: waits (bounded) for the count to settle
// back to within `slack` of `baseline`, and returns the last count seen.
size_t settled_descriptors(size_t baseline, size_t slack) {
  size_t count = open_descriptors();
  for (int i = 0; i < 100 && count > baseline + slack; ++i) {
    std::this_thread::sleep_for(20ms);
    count = open_descriptors();
  }
  return count;
}

std::string write_file(const TestServer& server, const std::string& name, size_t size) {
  std::filesystem::path path = server.data_dir() / name;
  std::ofstream(path, std::ios::binary) << std::string(size, 'x');
  return path.string();
}

}  // namespace

TEST_CASE("res:file closes its file when a Lua error interrupts it", "[http][fd]") {
  TestServer server("app", kRoutes);
  std::string path = write_file(server, "small.txt", 100);
  REQUIRE(http_request(server.port(), "GET", "/file?path=" + path).status == 200);
  size_t baseline = settled_descriptors(open_descriptors(), 0);
  constexpr int kRequests = 50;
  for (int i = 0; i < kRequests; ++i) {
    REQUIRE(http_request(server.port(), "GET", "/file-raising?path=" + path).status == 500);
  }
  // Each request leaked one descriptor when res:file held a raw fd.
  CHECK(settled_descriptors(baseline, 5) <= baseline + 5);
}

TEST_CASE("file answers that send no file, and downloads the client abandons, close the file",
          "[http][fd]") {
  TestServer server("app", kRoutes);
  std::string small = write_file(server, "small.txt", 100);
  std::string large = write_file(server, "large.bin", 32 * 1024 * 1024);
  auto first = http_request(server.port(), "GET", "/file?path=" + small);
  REQUIRE(first.status == 200);
  std::string etag = first.header("etag");
  size_t baseline = settled_descriptors(open_descriptors(), 0);
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    CHECK(http_request(server.port(), "HEAD", "/file?path=" + small).status == 200);
    CHECK(http_request(server.port(), "GET", "/file?path=" + small, "", "If-None-Match: " + etag)
              .status == 304);
    CHECK(
        http_request(server.port(), "GET", "/file?path=" + small, "", "Range: bytes=500-").status ==
        416);
    RawConnection abandoned(server.port());
    abandoned.set_receive_buffer(4096);
    abandoned.send("GET /file?path=" + large + " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(!abandoned.read_some(1s).empty());  // the download has started: its file is queued
  }
  CHECK(settled_descriptors(baseline, 5) <= baseline + 5);
}

// The test binary keeps SIGPIPE's default action, as an embedding program may: a download whose
// client resets the connection must fail that write with EPIPE, not kill the process.
TEST_CASE("an embedding process keeping SIGPIPE's default survives downloads cut by a reset",
          "[http][fd]") {
  struct sigaction current {};
  sigaction(SIGPIPE, nullptr, &current);
  REQUIRE(current.sa_handler == SIG_DFL);
  TestServer server("app", kRoutes);
  std::string large = write_file(server, "large.bin", 32 * 1024 * 1024);
  for (int i = 0; i < 30; ++i) {
    RawConnection cut(server.port());
    cut.set_receive_buffer(4096);
    cut.send("GET /file?path=" + large + " HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(!cut.read_some(1s).empty());
    linger reset{1, 0};  // close() then sends RST: the server's next write gets EPIPE
    ::setsockopt(cut.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  std::this_thread::sleep_for(100ms);
  CHECK(http_request(server.port(), "GET", "/file?path=" + large, "", "Range: bytes=0-9").status ==
        206);
}
