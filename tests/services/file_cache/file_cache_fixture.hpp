// What the file cache tests share: a Depot serving the file cache (scripts/file_cache) under "/",
// "/cache" and "/services/cache", next to the KBase auth stub (tests/stubs/kbase_auth) under
// "/auth"; and small clients for each route. With DEPOT_TEST_BLOBS=s3 (the CTest entries "on s3:
// ...") the bytes go to a real S3 server (tests/support/s3_server.hpp); tests tagged [fs_layout]
// look at the files themselves and run on files only.
#pragma once

#include <fcntl.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/http_client.hpp"
#include "tests/support/s3_server.hpp"
#include "tests/support/stub_server.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing::file_cache {

using nlohmann::json;

inline const std::string kToken = "Authorization: non_admin_token";
inline const std::string kToken2 = "Authorization: non_admin_token2";
inline const std::string kJson = "Content-Type: application/json";
inline const std::string kBoundary = "depotFileCacheBoundary0123456789";
inline const std::string kMultipart = "Content-Type: multipart/form-data; boundary=" + kBoundary;

class FileCache {
 public:
  // `config`: settings merged over {"KBASE_AUTH_URL": <the stub's URL>}; `data_dir`: a data dir
  // to use instead of a fresh one (to inspect it, or share it with `depot admin`); `storage`: the
  // server config's "storage" section (null: s3_for_services()'s, or files).
  explicit FileCache(json config = json::object(), std::filesystem::path data_dir = {},
                     json storage = nullptr) {
    if (S3Server* s3 = s3_for_services(); storage.is_null() && s3) storage = s3->storage();
    server_ = serve_stubs({{"kbase_auth", "/auth"}}, [&](Options& options) {
      if (!data_dir.empty()) options.data_dir = data_dir;
      if (!storage.is_null()) options.config["storage"] = storage;
    });
    auth_url_ = url_on(*server_, "/auth");
    json settings = {{"KBASE_AUTH_URL", auth_url_}};
    settings.update(config);
    add_service(*server_,
                {"file_cache", "file_cache", {"/", "/cache", "/services/cache"}, settings});
  }

  uint16_t port() const { return server_->port(); }
  const std::string& auth_url() const { return auth_url_; }
  std::filesystem::path data_dir() const { return server_->data_dir(); }
  std::filesystem::path stored_file(const std::string& cache_id) const {
    return data_dir() / "file_cache" / cache_id.substr(0, 2) / cache_id;
  }
  TestServer& server() { return *server_; }

  // Serves `source` as one more service mounted at `mount` (a helper upstream for one test).
  void add_script(const std::string& name, const std::string& source, const std::string& mount) {
    server_->write_script(name, source);
    std::string error =
        server_->server().add_service({name, server_->scripts_dir() / name, {mount}});
    if (!error.empty()) throw std::runtime_error(name + " did not load: " + error);
  }

  // How many token introspections the auth stub answered.
  int auth_calls() const {
    return json::parse(http_request(port(), "GET", "/auth/calls").body)["calls"].get<int>();
  }

 private:
  std::unique_ptr<TestServer> server_;
  std::string auth_url_;
};

// A cache id body no other test uses: {"test": "<label>", "n": <counter>, "pid": <pid>}.
inline std::string unique_body(const std::string& label) {
  static std::atomic<int> counter{0};
  return json{{"test", label}, {"n", ++counter}, {"pid", getpid()}}.dump();
}

inline std::string multipart(const std::string& field, const std::string& filename,
                             const std::string& content) {
  return "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + field +
         "\"; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         content + "\r\n--" + kBoundary + "--\r\n";
}

// The "error" of an error answer, or a description of what came instead.
inline std::string error_of(const HttpResponse& response) {
  auto body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.value("status", "") == "error" && body.contains("error") &&
      body["error"].is_string()) {
    return body["error"];
  }
  return "<not an error answer: " + std::to_string(response.status) + " " + response.body + ">";
}

// Checks an error answer's status and message.
inline void check_error(const HttpResponse& response, int status, const std::string& error) {
  CHECK(response.status == status);
  CHECK(error_of(response) == error);
}

inline HttpResponse post_cache_id(uint16_t port, const std::string& body,
                                  const std::string& token = kToken,
                                  const std::string& prefix = "") {
  return http_request(port, "POST", prefix + "/v1/cache_id", body, token + "\r\n" + kJson);
}

// A new cache id (its placeholder created) for a unique body; throws unless answered 200.
inline std::string new_cache_id(uint16_t port, const std::string& token = kToken,
                                const std::string& label = "id") {
  auto response = post_cache_id(port, unique_body(label), token);
  if (response.status != 200) throw std::runtime_error("cache_id answered " + response.body);
  return json::parse(response.body)["cache_id"];
}

inline HttpResponse upload(uint16_t port, const std::string& cache_id, const std::string& filename,
                           const std::string& content, const std::string& token = kToken,
                           const std::string& prefix = "") {
  return http_request(port, "POST", prefix + "/v1/cache/" + cache_id,
                      multipart("file", filename, content), token + "\r\n" + kMultipart);
}

inline HttpResponse download(uint16_t port, const std::string& cache_id,
                             const std::string& extra_headers = kToken) {
  return http_request(port, "GET", "/v1/cache/" + cache_id, "", extra_headers);
}

inline HttpResponse remove(uint16_t port, const std::string& cache_id,
                           const std::string& token = kToken) {
  return http_request(port, "DELETE", "/v1/cache/" + cache_id, "", token);
}

inline std::string blake2b_hex(const std::string& text) {
  unsigned char digest[64];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(text.data()),
                     text.size(), nullptr, 0);
  char hex[129];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

// Runs `depot admin <command>` with the file cache on `data_dir`; returns its stdout, or throws
// if it exits non-zero. The child keeps none of this process's descriptors: an inherited copy of
// a server socket would outlive its close() in the server, and with it its epoll registration.
inline std::string run_admin(const std::filesystem::path& data_dir, const std::string& command) {
  std::ofstream(data_dir / "admin.json")
      << json({{"services", {{{"name", "file_cache"}, {"mount", "/"}}}}}).dump();
  std::string config = (data_dir / "admin.json").string();
  std::string data = data_dir.string();
  std::vector<const char*> argv = {DEPOT_BINARY,   "admin",      "--config",
                                   config.c_str(), "--scripts",  DEPOT_SOURCE_DIR "/scripts",
                                   "--data-dir",   data.c_str(), command.c_str(),
                                   nullptr};
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = fork();
  if (pid == 0) {
    // From the data dir, so that no ./.env of the caller's directory applies.
    dup2(out[1], 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close_range(3, ~0U, 0);
    if (chdir(data.c_str()) != 0) _exit(127);
    execv(DEPOT_BINARY, const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  close(out[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = read(out[0], buffer, sizeof buffer)) != 0;) {
    if (n > 0)
      output.append(buffer, static_cast<size_t>(n));
    else if (errno != EINTR)
      break;
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("depot admin " + command + " failed: " + output);
  return output;
}

}  // namespace depot::testing::file_cache
