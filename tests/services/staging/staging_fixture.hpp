// What the staging tests share: a Depot serving the staging service (scripts/staging) next to the
// JupyterHub stub (tests/stubs/jupyterhub) under "/jhub", on a fresh temporary tree
//   <root>/source   SOURCE_STORAGE_PATH, with the original tests' data/ files
//   <root>/target   TARGET_STORAGE_PATH
//   <root>/outside  files no request may read, change or sit next to
// and small clients for each route, plus a snapshot of a tree to prove nothing changed.
#pragma once

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/support/http_client.hpp"
#include "tests/support/stub_server.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing::staging {

using depot::testing::HttpResponse;
using nlohmann::json;
namespace stdfs = std::filesystem;

inline const std::string kJson = "Content-Type: application/json";

inline void write_file(const stdfs::path& path, const std::string& content) {
  stdfs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

inline std::string read_file(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

inline unsigned mode_of(const stdfs::path& path) {
  struct stat status;
  if (::lstat(path.c_str(), &status) != 0) return 0;
  return status.st_mode & 07777;
}

class Staging {
 public:
  // `config`: settings merged over the defaults below; `mount`: where staging is mounted.
  explicit Staging(json config = json::object(), const std::string& mount = "/")
      : root_(make_temp_dir("depot-staging")), mount_(mount == "/" ? "" : mount) {
    stdfs::create_directories(source());
    stdfs::create_directories(target());
    write_file(source() / "data/file1.txt", "This is a test file");
    write_file(source() / "data/file2.txt", "This is another test file");
    write_file(source() / "data/folder/file3.txt", "File 3");
    write_file(source() / "data/folder/file4.txt", "File 4");
    write_file(outside() / "secret.txt", "outside the roots");
    write_file(outside() / "dir/inner.txt", "also outside");
    server_ = serve_stubs({{"jupyterhub", "/jhub"}});
    json settings = {{"SOURCE_STORAGE_PATH", source().string()},
                     {"TARGET_STORAGE_PATH", target().string()},
                     {"JUPYTERHUB_URL", hub_url()},
                     {"JUPYTERHUB_API_TOKEN", "admin-token"}};
    settings.update(config);
    add_service(*server_, {"staging", "staging", {mount}, settings});
  }
  ~Staging() {
    std::error_code ignored;
    stdfs::remove_all(root_, ignored);
  }

  uint16_t port() const { return server_->port(); }
  stdfs::path root() const { return root_; }
  stdfs::path source() const { return root_ / "source"; }
  stdfs::path target() const { return root_ / "target"; }
  stdfs::path outside() const { return root_ / "outside"; }
  std::string hub_url() const { return url_on(*server_, "/jhub"); }
  TestServer& server() { return *server_; }

  HttpResponse get(const std::string& path, const std::string& headers = "") {
    return http_request(port(), "GET", mount_ + path, "", headers);
  }
  HttpResponse post(const std::string& path, const std::string& body,
                    const std::string& headers = kJson) {
    return http_request(port(), "POST", mount_ + path, body, headers);
  }
  // POST /stage-data/?method=&username=[&extra] with {"data": {...}}.
  HttpResponse stage(const std::string& method, const std::string& username,
                     const std::string& local_path, const std::string& relative_path,
                     const std::string& extra_query = "") {
    json body = {
        {"data", {{"local_path_on_storage", local_path}, {"relative_path", relative_path}}}};
    return post("/stage-data/?method=" + method + "&username=" + username + extra_query,
                body.dump());
  }
  HttpResponse create_file(const std::string& filename, const std::string& content) {
    return post("/create-file/", json{{"filename", filename}, {"content", content}}.dump());
  }
  json records(const std::string& query = "") {
    return json::parse(get("/stage-data/records" + query).body)["records"];
  }
  json hub_calls() { return json::parse(http_request(port(), "GET", "/jhub/calls").body); }
  // The tokens the hub stub minted and nobody revoked, each with the request that asked for it.
  json minted_tokens() { return json::parse(http_request(port(), "GET", "/jhub/tokens").body); }
  // A file as the hub stub's contents API stores it (null when absent).
  json jupyter_file(const std::string& user, const std::string& path) {
    auto response = http_request(port(), "GET", "/jhub/user/" + user + "/api/contents/" + path, "",
                                 "Authorization: token user-token-" + user);
    return response.status == 200 ? json::parse(response.body) : json();
  }

 private:
  stdfs::path root_;
  std::string mount_;
  std::unique_ptr<TestServer> server_;
};

// The "detail" of an error answer, or a description of what came instead.
inline json detail_of(const HttpResponse& response) {
  auto body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("detail")) return body["detail"];
  return "<no detail: " + std::to_string(response.status) + " " + response.body + ">";
}

inline void check_detail(const HttpResponse& response, int status, const std::string& detail) {
  CHECK(response.status == status);
  CHECK(detail_of(response) == detail);
}

inline void check_success(const HttpResponse& response, const std::string& message) {
  CHECK(response.status == 200);
  auto body = json::parse(response.body, nullptr, false);
  CHECK(body == json({{"status", "success"}, {"message", message}}));
}

// Everything under `root` (not following symlinks): path -> type, mode, owner, size, mtime and a
// digest of the content — equal snapshots mean nothing was read-modified, created or removed.
inline std::map<std::string, std::string> snapshot(const stdfs::path& root) {
  std::map<std::string, std::string> entries;
  std::error_code error;
  if (!stdfs::exists(stdfs::symlink_status(root))) return entries;
  for (auto it = stdfs::recursive_directory_iterator(root, error);
       it != stdfs::recursive_directory_iterator(); it.increment(error)) {
    struct stat status;
    if (::lstat(it->path().c_str(), &status) != 0) continue;
    std::ostringstream line;
    line << (status.st_mode & 0170000) << " " << (status.st_mode & 07777) << " " << status.st_uid
         << " " << status.st_size << " " << status.st_mtim.tv_sec << "." << status.st_mtim.tv_nsec;
    if (S_ISREG(status.st_mode)) {
      std::string content = read_file(it->path());
      unsigned char digest[32];
      crypto_generichash(digest, sizeof digest,
                         reinterpret_cast<const unsigned char*>(content.data()), content.size(),
                         nullptr, 0);
      char hex[65];
      sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
      line << " " << hex;
    } else if (S_ISLNK(status.st_mode)) {
      line << " -> " << stdfs::read_symlink(it->path()).string();
    }
    entries[stdfs::relative(it->path(), root).string()] = line.str();
  }
  return entries;
}

}  // namespace depot::testing::staging
