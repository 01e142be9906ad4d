// Replays the fuzz targets' inputs in the normal build: every saved finding in
// tests/fuzz/regressions/<target>/ (a crash that was fixed must stay fixed) and the seed corpus in
// tests/fuzz/corpus/<target>/ (so the replay never passes on an empty directory).
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/targets.hpp"

namespace {

std::vector<std::filesystem::path> files_in(const std::filesystem::path& directory) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::is_directory(directory)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.is_regular_file() && entry.path().filename().string()[0] != '.')
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string contents_of(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// Runs `run` on every seed and every saved finding of `target`.
template <typename Run>
void replay(const std::string& target, Run run) {
  const std::filesystem::path fuzz_dir = std::filesystem::path(DEPOT_SOURCE_DIR) / "tests" / "fuzz";
  std::vector<std::filesystem::path> seeds = files_in(fuzz_dir / "corpus" / target);
  std::vector<std::filesystem::path> findings = files_in(fuzz_dir / "regressions" / target);
  REQUIRE(seeds.size() >= 3);
  for (const auto& inputs : {seeds, findings}) {
    for (const std::filesystem::path& path : inputs) {
      INFO("input " << path.string());
      REQUIRE_NOTHROW(run(contents_of(path)));
    }
  }
}

}  // namespace

TEST_CASE("fuzz inputs replay cleanly: raw requests over a connection", "[fuzz]") {
  depot::fuzz::HttpRequestTarget target;
  replay("http_request", [&](const std::string& input) { target.run(input); });
}

TEST_CASE("fuzz inputs replay cleanly: the multipart parser", "[fuzz]") {
  replay("multipart", [](const std::string& input) { depot::fuzz::run_multipart_target(input); });
}

TEST_CASE("fuzz inputs replay cleanly: the json decoder", "[fuzz]") {
  depot::fuzz::JsonTarget target;
  replay("json", [&](const std::string& input) { target.run(input); });
}
