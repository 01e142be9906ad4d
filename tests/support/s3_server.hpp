// A real S3 server for tests: s3rver (tests/s3/, installed by setup.sh's npm ci) on 127.0.0.1 at
// a free port, its objects in a fresh temporary directory, one bucket "depot". The constructor
// also sets AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to s3rver's and AWS_REGION; the destructor
// stops it and removes the directory. s3rver refuses an unknown access key but does not verify
// Signature V4 itself (its code says "unimplemented"): the signer is checked against AWS's
// published examples, and against a verifying server by tests/s3/ceph_rgw.sh.
//
// s3rver answers unsigned requests too: keys() looks at the bucket that way, so what
// a test asserts about the bucket never depends on the signer under test.
//
// With DEPOT_TEST_S3_ENDPOINT=http://127.0.0.1:<port> in the environment it starts nothing and
// uses that server instead, with the credentials the environment has: how tests/s3/ceph_rgw.sh
// runs the same suite against Ceph RGW (bucket "depot", readable anonymously for keys()).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace depot::testing {

class S3Server {
 public:
  S3Server();
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  uint16_t port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Whether this is s3rver, started here (false: the external server of DEPOT_TEST_S3_ENDPOINT).
  bool is_s3rver() const { return process_ != nullptr; }
  // The config's "storage" section for blobs under s3://depot/<prefix> on this server.
  nlohmann::json storage(const std::string& prefix = "test") const;
  // The keys of the objects under `prefix` (visible, complete objects only), in key order.
  std::vector<std::string> keys(const std::string& prefix = "") const;
  // Stores `body` under `key` (unsigned, as keys() lists), last modified `age_seconds` ago: s3rver
  // takes an object's Last-Modified from its file, whose times this sets. s3rver only (throws on
  // another server): what a crash long ago left behind, without waiting for it to grow old.
  void put_aged(const std::string& key, const std::string& body, int age_seconds) const;

 private:
  std::filesystem::path directory_;
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
};

// When the environment says DEPOT_TEST_BLOBS=s3 (the CTest entries labelled s3 re-run service
// suites so): the one S3 server of this test process, started on first use; otherwise nullptr.
S3Server* s3_for_services();

}  // namespace depot::testing
