// /metrics helpers for tests (see scrape.hpp).
#include "tests/support/scrape.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing {

std::string scrape(uint16_t port) {
  HttpResponse response = http_request(port, "GET", "/metrics");
  if (response.status != 200)
    throw std::runtime_error("GET /metrics: " + std::to_string(response.status));
  return response.body;
}

double sample(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

std::string promtool_check(const std::string& text) {
  std::string promtool = find_program("promtool");
  if (promtool.empty())
    throw std::runtime_error("promtool is not installed (Debian package prometheus)");
  std::filesystem::path directory = make_temp_dir("promtool");
  std::ofstream(directory / "metrics.txt") << text;
  // promtool reads the metrics on stdin.
  ChildProcess check({"sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool,
                      (directory / "metrics.txt").string()},
                     directory / "promtool.log");
  int status = check.wait_exit();
  std::string said = check.output();
  std::filesystem::remove_all(directory);
  return status == 0 ? "" : "exit " + std::to_string(status) + ": " + said;
}

}  // namespace depot::testing
