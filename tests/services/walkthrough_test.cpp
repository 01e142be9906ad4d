// The README's quick start walkthrough, run exactly as written (the shell block after its
// `walkthrough` marker) against `depot serve` with the default config, from a directory laid out
// like a checkout: what a newcomer pastes must work on embedded defaults alone.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/depot_process.hpp"
#include "tests/support/test_server.hpp"

namespace {

std::string walkthrough_block() {
  std::ifstream readme(DEPOT_SOURCE_DIR "/README.md");
  std::stringstream text;
  text << readme.rdbuf();
  std::string all = text.str();
  size_t marker = all.find("<!-- walkthrough:");
  size_t start = all.find("```sh\n", marker);
  size_t end = all.find("\n```", start + 6);
  if (marker == std::string::npos || start == std::string::npos || end == std::string::npos)
    return "";
  return all.substr(start + 6, end - start - 6);
}

}  // namespace

TEST_CASE("the README walkthrough works against depot serve with the default config",
          "[walkthrough]") {
  std::string block = walkthrough_block();
  REQUIRE_THAT(block, Catch::Contains("./build/depot admin users approve"));
  for (const char* name :
       {"KBASE_AUTH_URL", "JWT_SECRET_KEY", "ENABLE_AUTH", "KT_AUTH_EMAIL", "KT_AUTH_TOKEN"})
    unsetenv(name);
  auto checkout = depot::testing::make_temp_dir("depot-walkthrough-");
  std::filesystem::create_directory(checkout / "build");
  std::filesystem::create_symlink(DEPOT_BINARY, checkout / "build" / "depot");
  std::filesystem::create_directory_symlink(DEPOT_SOURCE_DIR "/scripts", checkout / "scripts");
  std::filesystem::create_directory_symlink(DEPOT_SOURCE_DIR "/config", checkout / "config");
  std::ofstream(checkout / "walkthrough.sh") << block;
  {
    depot::testing::DepotProcess server(checkout, {"--port", "0", "--log-format", "json"});
    REQUIRE(server.port != 0);
    std::string command = "cd '" + checkout.string() +
                          "' && DEPOT=http://127.0.0.1:" + std::to_string(server.port) +
                          " bash -euo pipefail walkthrough.sh 2>&1";
    FILE* shell = popen(command.c_str(), "r");
    REQUIRE(shell != nullptr);
    std::string output;
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof buffer, shell)) > 0;) output.append(buffer, n);
    int status = pclose(shell);
    INFO(output);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // Each step's answer, in order.
    size_t at = 0;
    for (const char* expected :
         {"User ada@example.org added to pending user list",
          "user ada@example.org now ready for access", "{\"status\":\"ok\"}",
          "hello from the cache\n", "File 'notes.txt' created successfully",
          "Data staged for user ada with method local_copy", "staged by depot"}) {
      INFO(expected);
      at = output.find(expected, at);
      CHECK(at != std::string::npos);
      if (at == std::string::npos) at = 0;
    }
    // The generated signing key is the owner's alone and never in the log.
    auto key_file = checkout / "data" / "users" / "jwt_secret_key";
    REQUIRE(std::filesystem::exists(key_file));
    CHECK((std::filesystem::status(key_file).permissions() & std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    std::ifstream key_stream(key_file);
    std::string key((std::istreambuf_iterator<char>(key_stream)), {});
    std::ifstream log_stream(server.log);
    std::string log((std::istreambuf_iterator<char>(log_stream)), {});
    REQUIRE(key.size() >= 32);
    CHECK(log.find(key) == std::string::npos);
    // The image cache says in one line what it needs.
    CHECK_THAT(log, Catch::Contains(
                        "\"reason\":\"config: image_cache: set KT_AUTH_EMAIL and KT_AUTH_TOKEN "
                        "(environment variables or services[].config) to mount it\""));
  }
  std::filesystem::remove_all(checkout);
}
