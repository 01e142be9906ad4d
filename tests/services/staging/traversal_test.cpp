// Escape attempts against every path the staging service takes from a client — the original's
// worst defects (specs/staging.md §3.6): local_path_on_storage through each method,
// relative_path, create-file names and usernames, with "..", absolute paths, and symlinks in the
// source path, inside a copied tree and planted in a user's area. Each must be refused with 400,
// and the filesystem afterwards proves nothing outside the roots was read into a response,
// created, changed or linked, and nothing was left in the roots either.
#include <catch2/catch.hpp>
#include <functional>

#include "tests/services/staging/staging_fixture.hpp"

using namespace depot::testing::staging;

namespace {

// The snapshot without directories: user areas may be created (empty) before a refusal.
std::map<std::string, std::string> files_of(const std::map<std::string, std::string>& entries) {
  std::map<std::string, std::string> files;
  for (const auto& [path, line] : entries) {
    if (line.rfind(std::to_string(S_IFDIR) + " ", 0) != 0) files[path] = line;
  }
  return files;
}

std::vector<std::string> names_in(const stdfs::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : stdfs::directory_iterator(directory)) {
    names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct Attempt {
  std::string what;
  std::function<HttpResponse(Staging&)> send;
};

}  // namespace

TEST_CASE("staging traversal: every escape attempt is refused and changes nothing", "[staging]") {
  Staging staging;
  const stdfs::path outside = staging.outside();
  const std::string secret = (outside / "secret.txt").string();
  // Symlinks that lead out of the roots, planted where a careless join would follow them.
  stdfs::create_directory_symlink(outside, staging.source() / "data/escape");
  stdfs::create_symlink(secret, staging.source() / "data/secret_link.txt");
  write_file(staging.source() / "data/tree/ok.txt", "fine");
  stdfs::create_symlink(secret, staging.source() / "data/tree/leak.txt");
  stdfs::create_directories(staging.target() / "mallory");
  stdfs::create_directory_symlink(outside, staging.target() / "mallory/planted");
  stdfs::create_directory_symlink(outside, staging.target() / "eve");

  const std::string source = staging.source().string();
  std::vector<Attempt> attempts = {
      // local_path_on_storage, through each method
      {"local_copy ..",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "../outside/secret.txt", "a.txt");
       }},
      {"local_copy a/../..",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/../../outside/secret.txt", "a.txt");
       }},
      {"local_copy absolute outside",
       [&](Staging& s) { return s.stage("local_copy", "michele", secret, "a.txt"); }},
      {"local_copy /etc/passwd",
       [](Staging& s) { return s.stage("local_copy", "michele", "/etc/passwd", "passwd"); }},
      {"local_copy absolute with ..",
       [&](Staging& s) {
         return s.stage("local_copy", "michele", source + "/../outside/secret.txt", "a.txt");
       }},
      {"local_copy a sibling sharing the prefix",
       [&](Staging& s) {
         return s.stage("local_copy", "michele", source + "x/secret.txt", "a.txt");
       }},
      {"local_copy through a directory symlink",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/escape/secret.txt", "a.txt");
       }},
      {"local_copy of a symlink leading out",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/secret_link.txt", "a.txt");
       }},
      {"local_copy of a tree holding a symlink out",
       [](Staging& s) { return s.stage("local_copy", "michele", "data/tree", "tree"); }},
      {"local_copy of a directory symlink out",
       [](Staging& s) { return s.stage("local_copy", "michele", "data/escape", "escape"); }},
      {"local_symlink ..",
       [](Staging& s) {
         return s.stage("local_symlink", "michele", "../outside/secret.txt", "l.txt");
       }},
      {"local_symlink of a symlink leading out",
       [](Staging& s) {
         return s.stage("local_symlink", "michele", "data/secret_link.txt", "l.txt");
       }},
      {"local_symlink absolute outside",
       [&](Staging& s) { return s.stage("local_symlink", "michele", outside.string(), "l"); }},
      {"direct_download ..",
       [](Staging& s) {
         return s.stage("direct_download", "michele", "../outside/secret.txt", "x");
       }},
      {"direct_download through a directory symlink",
       [](Staging& s) {
         return s.stage("direct_download", "michele", "data/escape/secret.txt", "x");
       }},
      {"direct_download absolute outside",
       [&](Staging& s) { return s.stage("direct_download", "michele", secret, "x"); }},
      {"jupyter_copy of a symlink leading out",
       [](Staging& s) {
         return s.stage("jupyter_copy", "alice", "data/secret_link.txt", "s.txt");
       }},
      {"jupyter_copy ..",
       [](Staging& s) {
         return s.stage("jupyter_copy", "alice", "../outside/secret.txt", "s.txt");
       }},
      // relative_path
      {"relative_path ../..",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/file1.txt", "../../outside/new.txt");
       }},
      {"relative_path into another user's area",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/file1.txt", "../anna/f.txt");
       }},
      {"relative_path absolute",
       [&](Staging& s) {
         return s.stage("local_copy", "michele", "data/file1.txt", (outside / "new.txt").string());
       }},
      {"relative_path through a planted symlink",
       [](Staging& s) {
         return s.stage("local_copy", "mallory", "data/file1.txt", "planted/new.txt");
       }},
      {"relative_path .. after a new part",
       [](Staging& s) {
         return s.stage("local_copy", "michele", "data/file1.txt", "new/../../../outside/x");
       }},
      {"relative_path ..",
       [](Staging& s) { return s.stage("local_copy", "michele", "data/file1.txt", ".."); }},
      {"relative_path empty",
       [](Staging& s) { return s.stage("local_copy", "michele", "data/file1.txt", ""); }},
      {"local_symlink relative_path ../..",
       [](Staging& s) {
         return s.stage("local_symlink", "michele", "data/file1.txt", "../../outside/link");
       }},
      {"local_symlink through a planted symlink",
       [](Staging& s) {
         return s.stage("local_symlink", "mallory", "data/file1.txt", "planted/link");
       }},
      {"jupyter_copy relative_path ..",
       [](Staging& s) {
         return s.stage("jupyter_copy", "alice", "data/file1.txt", "../../etc/x");
       }},
      // create-file names
      {"create-file ..", [](Staging& s) { return s.create_file("../outside/new.txt", "x"); }},
      {"create-file absolute outside",
       [&](Staging& s) { return s.create_file((outside / "new.txt").string(), "x"); }},
      {"create-file through a directory symlink",
       [](Staging& s) { return s.create_file("data/escape/new.txt", "x"); }},
      {"create-file over a symlink leading out",
       [](Staging& s) { return s.create_file("data/secret_link.txt", "x"); }},
      {"create-file empty name", [](Staging& s) { return s.create_file("", "x"); }},
      // usernames
      {"username ../outside",
       [](Staging& s) { return s.stage("local_copy", "../outside", "data/file1.txt", "a.txt"); }},
      {"username with a slash",
       [](Staging& s) { return s.stage("local_copy", "a/b", "data/file1.txt", "a.txt"); }},
      {"username ..",
       [](Staging& s) { return s.stage("local_copy", "..", "data/file1.txt", "a.txt"); }},
      {"username empty",
       [](Staging& s) { return s.stage("local_copy", "", "data/file1.txt", "a.txt"); }},
      {"username an option",
       [](Staging& s) { return s.stage("local_symlink", "-rf", "data/file1.txt", "a.txt"); }},
      {"username encoded slash",
       [](Staging& s) {
         return s.stage("local_copy", "x%2F..%2F..%2Foutside", "data/file1.txt", "a.txt");
       }},
      {"user area that is a symlink out",
       [](Staging& s) { return s.stage("local_copy", "eve", "data/file1.txt", "a.txt"); }},
  };
  REQUIRE(attempts.size() >= 20);

  const auto root_names = names_in(staging.root());
  const auto outside_before = snapshot(outside);
  const auto source_before = snapshot(staging.source());
  const auto target_before = files_of(snapshot(staging.target()));
  const std::string etc_passwd_before = read_file("/etc/passwd");
  for (const auto& attempt : attempts) {
    INFO(attempt.what);
    auto response = attempt.send(staging);
    CHECK(response.status == 400);
    CHECK(detail_of(response).is_string());
    CHECK(response.body.find("outside the roots") == std::string::npos);  // the secret's content
    CHECK(snapshot(outside) == outside_before);
    CHECK(names_in(staging.root()) == root_names);
    CHECK(snapshot(staging.source()) == source_before);
    CHECK(files_of(snapshot(staging.target())) == target_before);
  }
  CHECK(read_file("/etc/passwd") == etc_passwd_before);
  CHECK(staging.jupyter_file("alice", "s.txt").is_null());
  CHECK(staging.hub_calls().value("contents_put", 0) == 0);
  // Every attempt was recorded as failed, create-file and 422s aside.
  for (const auto& record : staging.records("?limit=1000")) CHECK(record["status"] == "failed");
}

TEST_CASE("staging traversal: the refusals say what was refused", "[staging]") {
  Staging staging;
  check_detail(staging.stage("local_copy", "../x", "data/file1.txt", "a"), 400,
               "Invalid username: ../x");
  check_detail(staging.stage("local_copy", "michele", "../outside/secret.txt", "a"), 400,
               "Invalid source path: " + staging.source().string() +
                   "/../outside/secret.txt (escapes the root)");
  auto outside = (staging.outside() / "secret.txt").string();
  check_detail(staging.stage("local_copy", "michele", outside, "a"), 400,
               "Invalid source path: " + outside + " (outside " + staging.source().string() + ")");
  check_detail(staging.stage("local_copy", "michele", "data/file1.txt", "/abs"), 400,
               "Invalid relative path: /abs (absolute paths are not allowed)");
  write_file(staging.source() / "data/tree/ok.txt", "fine");
  stdfs::create_symlink(staging.outside() / "secret.txt", staging.source() / "data/tree/leak.txt");
  check_detail(staging.stage("local_copy", "michele", "data/tree", "tree"), 400,
               "Symlink leads outside the source storage: " +
                   stdfs::canonical(staging.source()).string() + "/data/tree/leak.txt");
  auto file = staging.create_file("../x.txt", "x");
  check_detail(file, 400, "Invalid file name: ../x.txt (escapes the root)");
}
