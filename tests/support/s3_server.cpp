// s3rver for tests (see s3_server.hpp).
#include "tests/support/s3_server.hpp"

#include <sys/time.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <regex>
#include <stdexcept>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing {
namespace {

std::vector<std::string> matches(const std::string& text, const std::string& pattern) {
  std::vector<std::string> found;
  std::regex expression(pattern);
  for (std::sregex_iterator it(text.begin(), text.end(), expression), end; it != end; ++it)
    found.push_back((*it)[1]);
  return found;
}

}  // namespace

S3Server::S3Server() {
  if (const char* external = std::getenv("DEPOT_TEST_S3_ENDPOINT")) {
    auto port = matches(external, "^http://127\\.0\\.0\\.1:([0-9]+)/?$");
    if (port.empty())
      throw std::runtime_error("DEPOT_TEST_S3_ENDPOINT must be http://127.0.0.1:<port>");
    port_ = static_cast<uint16_t>(std::stoi(port.front()));
    return;
  }
  std::string script = DEPOT_SOURCE_DIR "/tests/s3/server.js";
  if (!std::filesystem::exists(DEPOT_SOURCE_DIR "/tests/s3/node_modules/s3rver"))
    throw std::runtime_error("s3rver is not installed: run ./setup.sh (npm ci in tests/s3)");
  std::string node = find_program("node");
  if (node.empty()) throw std::runtime_error("node is not installed: run ./setup.sh");
  directory_ = make_temp_dir("depot-s3");
  process_ = std::make_unique<ChildProcess>(
      // s3rver's ListObjectsV2 continuation tokens are DES-encrypted, a cipher of OpenSSL 3's
      // legacy provider: without it any truncated listing (a page) answers 500.
      std::vector<std::string>{node, "--openssl-legacy-provider", script,
                               (directory_ / "objects").string()},
      directory_ / "s3rver.log");
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (port_ == 0 && std::chrono::steady_clock::now() < give_up) {
    auto found = matches(process_->output(), "listening ([0-9]+)");
    if (!found.empty()) port_ = static_cast<uint16_t>(std::stoi(found.front()));
    if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (port_ == 0) throw std::runtime_error("s3rver did not start: " + process_->output());
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  setenv("AWS_REGION", "us-east-1", 1);
}

S3Server::~S3Server() {
  process_.reset();
  std::error_code ignored;
  if (!directory_.empty()) std::filesystem::remove_all(directory_, ignored);
}

nlohmann::json S3Server::storage(const std::string& prefix) const {
  return {{"blobs", "s3://depot/" + prefix}, {"s3_endpoint", endpoint()}};
}

std::vector<std::string> S3Server::keys(const std::string& prefix) const {
  auto listing = http_request(port_, "GET", "/depot?list-type=2&max-keys=1000&prefix=" + prefix);
  if (listing.status != 200) throw std::runtime_error("s3rver listing failed: " + listing.body);
  return matches(listing.body, "<Key>([^<]*)</Key>");
}

void S3Server::put_aged(const std::string& key, const std::string& body, int age_seconds) const {
  if (!is_s3rver()) throw std::runtime_error("S3Server::put_aged: s3rver only");
  auto stored = http_request(port_, "PUT", "/depot/" + key, body);
  if (stored.status != 200) throw std::runtime_error("s3rver PUT failed: " + stored.body);
  // s3rver's file of object "a/b" is <directory>/<bucket>/a/b._S3rver_object.
  std::filesystem::path file = directory_ / "objects" / "depot" / (key + "._S3rver_object");
  struct timeval times[2] = {};
  times[0].tv_sec = times[1].tv_sec = time(nullptr) - age_seconds;
  if (utimes(file.c_str(), times) != 0)
    throw std::runtime_error("S3Server::put_aged: cannot set the times of " + file.string());
}

S3Server* s3_for_services() {
  const char* mode = std::getenv("DEPOT_TEST_BLOBS");
  if (mode == nullptr || std::string(mode) != "s3") return nullptr;
  static S3Server server;
  return &server;
}

}  // namespace depot::testing
