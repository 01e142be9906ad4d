// Server start: connections that arrive while the scripts load are answered by them (never a 503
// "no scripts are loaded"), and temporary files that writers of a dead process left behind are
// removed before the server accepts.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::EagerClient;
using depot::testing::free_port;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
// Loading takes a while (as a large service's would), so that a client can connect meanwhile.
const char* const kSlowLoading = R"LUA(
local service = ...
local started = os.clock()
while os.clock() - started < 0.4 do end
service:get("/hello", function() return "hello\n" end)
)LUA";
}  // namespace

TEST_CASE("requests arriving while the scripts load get the route, not 503", "[startup]") {
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    uint16_t port = free_port();
    EagerClient client(port, "/hello");
    bool connected_during_start = false;
    {
      TestServer server("app", kSlowLoading, [&](depot::Options& options) {
        options.port = port;
        options.threads = 2;
      });
      connected_during_start = client.connected();
      CHECK(client.join() == 200);
    }
    // Otherwise this round tested nothing (the client only got through after start returned).
    CHECK(connected_during_start);
  }
}

TEST_CASE("temporary files no live writer holds are removed at start, others stay", "[startup]") {
  // Another process writing under the same data dir (a `depot admin`, say) holds its lock.
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  std::filesystem::path live;
  std::filesystem::path abandoned;
  std::filesystem::path abandoned_deep;
  std::vector<std::filesystem::path> kept;
  pid_t writer = -1;
  TestServer server("app", "local service = ...\nservice:get('/', function() return 'ok' end)\n",
                    [&](depot::Options& options) {
                      auto data = options.data_dir;
                      std::filesystem::create_directories(data / "uploads" / "ab");
                      abandoned = data / "uploads" / ".doc.tmp.0123456789abcdef";
                      abandoned_deep = data / "uploads" / "ab" / ".abcdef.tmp.fedcba9876543210";
                      live = data / "uploads" / ".other.tmp.00112233445566ff";
                      std::ofstream(abandoned) << std::string(1000, 'a');
                      std::ofstream(abandoned_deep) << std::string(234, 'b');
                      std::ofstream(live) << "still being written";
                      kept = {data / "uploads" / "doc",
                              data / "uploads" / ".doc.tmp.notahexsuffix00",
                              data / "uploads" / "doc.tmp.0123456789abcdef",
                              data / "uploads" / ".doc.tmp.0123456789ABCDEF"};
                      for (const auto& path : kept) std::ofstream(path) << "not a temporary file";
                      writer = fork();
                      if (writer == 0) {
                        int fd = ::open(live.c_str(), O_RDWR);
                        if (fd < 0 || ::flock(fd, LOCK_EX) != 0) _exit(1);
                        char one = 1;
                        if (::write(ready[1], &one, 1) != 1) _exit(1);
                        ::pause();
                        _exit(0);
                      }
                      char one = 0;
                      REQUIRE(::read(ready[0], &one, 1) == 1);
                    });
  CHECK_FALSE(std::filesystem::exists(abandoned));
  CHECK_FALSE(std::filesystem::exists(abandoned_deep));
  CHECK(std::filesystem::exists(live));
  for (const auto& path : kept) {
    INFO(path);
    CHECK(std::filesystem::exists(path));
  }
  CHECK(depot::testing::http_request(server.port(), "GET", "/").status == 200);
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
}
