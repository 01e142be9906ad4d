// The four staging methods over HTTP and the checks around them: local_copy of a file and of a
// tree (contents, modes, the skip when the target exists, no hidden leftovers), local_symlink
// (the source untouched), direct_download (headers, RFC 5987 names, Range), jupyter_copy against
// the JupyterHub stub (running, stopped, failing and unknown users; text and binary; parents;
// tokens), and chown to the user when the server runs as root.
#include <pwd.h>

#include <catch2/catch.hpp>

#include "tests/services/staging/staging_fixture.hpp"

using namespace depot::testing::staging;
using depot::testing::http_request;

TEST_CASE("staging methods: local_copy of a file keeps its content and makes it 0400",
          "[staging]") {
  Staging staging;
  ::chmod((staging.source() / "data/file1.txt").c_str(), 0640);
  check_success(staging.stage("local_copy", "michele", "data/file1.txt", "project/file1.txt"),
                "Data staged for user michele with method local_copy");
  auto copy = staging.target() / "michele/project/file1.txt";
  CHECK(read_file(copy) == "This is a test file");
  CHECK(mode_of(copy) == 0400);
  CHECK(stdfs::is_regular_file(stdfs::symlink_status(copy)));
  CHECK(mode_of(staging.source() / "data/file1.txt") == 0640);  // the source is untouched
  // Nothing hidden is left next to it.
  CHECK(std::distance(stdfs::directory_iterator(copy.parent_path()), {}) == 1);
}

TEST_CASE("staging methods: local_copy of a tree: files 0400, directories 0500", "[staging]") {
  Staging staging;
  write_file(staging.source() / "data/folder/sub/deep.bin", std::string("\0\1\2binary", 9));
  ::chmod((staging.source() / "data/folder/file3.txt").c_str(), 0755);
  check_success(staging.stage("local_copy", "michele", "data/folder", "project/folder"),
                "Data staged for user michele with method local_copy");
  auto copy = staging.target() / "michele/project/folder";
  CHECK(mode_of(copy) == 0500);
  CHECK(mode_of(copy / "sub") == 0500);
  for (const char* name : {"file3.txt", "file4.txt", "sub/deep.bin"}) {
    INFO(name);
    CHECK(mode_of(copy / name) == 0400);
    CHECK(read_file(copy / name) == read_file(staging.source() / "data/folder" / name));
  }
  CHECK(std::distance(stdfs::recursive_directory_iterator(copy), {}) == 4);
  auto records = staging.records();
  CHECK(records[0]["bytes"] == 6 + 6 + 9);
}

TEST_CASE("staging methods: an existing target is skipped and left untouched", "[staging]") {
  Staging staging;
  write_file(staging.target() / "michele/project/file1.txt", "mine");
  ::chmod((staging.target() / "michele/project/file1.txt").c_str(), 0664);
  auto target = (staging.target() / "michele/project/file1.txt").string();
  check_success(staging.stage("local_copy", "michele", "data/file1.txt", "project/file1.txt"),
                "Data already available at " + target);
  CHECK(read_file(target) == "mine");
  CHECK(mode_of(target) == 0664);
  // Also for a symlink staged before (it exists; it is not followed).
  check_success(staging.stage("local_symlink", "michele", "data/file2.txt", "l.txt"),
                "Data staged for user michele with method local_symlink");
  check_success(staging.stage("local_symlink", "michele", "data/file2.txt", "l.txt"),
                "Data already available at " + (staging.target() / "michele/l.txt").string());
  check_success(staging.stage("local_copy", "michele", "data/file1.txt", "l.txt"),
                "Data already available at " + (staging.target() / "michele/l.txt").string());
  CHECK(staging.records("?limit=1")[0]["status"] == "success");
}

TEST_CASE("staging methods: local_symlink links to the source and never changes it", "[staging]") {
  Staging staging;
  ::chmod((staging.source() / "data/file1.txt").c_str(), 0644);
  ::chmod((staging.source() / "data/folder").c_str(), 0755);
  auto before = snapshot(staging.source());
  check_success(staging.stage("local_symlink", "michele", "data/file1.txt", "p/link.txt"),
                "Data staged for user michele with method local_symlink");
  check_success(staging.stage("local_symlink", "michele", "data/folder", "p/folder"),
                "Data staged for user michele with method local_symlink");
  auto link = staging.target() / "michele/p/link.txt";
  CHECK(stdfs::is_symlink(stdfs::symlink_status(link)));
  CHECK(stdfs::read_symlink(link) == stdfs::canonical(staging.source() / "data/file1.txt"));
  CHECK(read_file(link) == "This is a test file");
  CHECK(read_file(staging.target() / "michele/p/folder/file3.txt") == "File 3");
  CHECK(snapshot(staging.source()) == before);
}

TEST_CASE("staging methods: direct_download streams the file as an attachment", "[staging]") {
  Staging staging;
  auto response = staging.stage("direct_download", "michele", "data/file1.txt", "ignored");
  CHECK(response.status == 200);
  CHECK(response.body == "This is a test file");
  CHECK(response.header("content-type") == "application/octet-stream");
  CHECK(response.header("content-disposition") == "attachment; filename=\"file1.txt\"");
  CHECK(response.header("content-length") == "19");
  CHECK_FALSE(response.header("etag").empty());
  CHECK_FALSE(response.header("last-modified").empty());
  CHECK(stdfs::is_empty(staging.target()));  // nothing staged on the server side

  write_file(staging.source() / "data/r\xc3\xa9sum\xc3\xa9 1.txt", "0123456789");
  json body = {
      {"data",
       {{"local_path_on_storage", "data/r\xc3\xa9sum\xc3\xa9 1.txt"}, {"relative_path", "x"}}}};
  auto named = staging.post("/stage-data/?method=direct_download&username=michele", body.dump(),
                            kJson + "\r\nRange: bytes=2-5");
  CHECK(named.status == 206);
  CHECK(named.body == "2345");
  CHECK(named.header("content-disposition") ==
        "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%201.txt");
  auto record = staging.records("?limit=1")[0];
  CHECK(record["status"] == "success");
  CHECK(record["bytes"] == 10);
}

TEST_CASE("staging methods: direct_download of a directory or a missing file", "[staging]") {
  Staging staging;
  check_detail(staging.stage("direct_download", "michele", "data/folder", "x"), 500,
               "Error during direct download: " + (staging.source() / "data/folder").string() +
                   " is not a file");
  check_detail(staging.stage("direct_download", "michele", "data/none.txt", "x"), 400,
               "Source path does not exist: " + (staging.source() / "data/none.txt").string());
}

TEST_CASE("staging methods: jupyter_copy into a running server, text and binary", "[staging]") {
  Staging staging;
  check_success(staging.stage("jupyter_copy", "alice", "data/file1.txt", "work/in/file1.txt"),
                "Data staged for user alice with method jupyter_copy");
  auto file = staging.jupyter_file("alice", "work/in/file1.txt");
  CHECK(file["type"] == "file");
  CHECK(file["format"] == "text");
  CHECK(file["content"] == "This is a test file");
  CHECK(staging.jupyter_file("alice", "work")["type"] == "directory");
  CHECK(staging.jupyter_file("alice", "work/in")["type"] == "directory");
  CHECK(staging.hub_calls().value("spawn", 0) == 0);

  std::string binary("\x89PNG\r\n\x1a\n\0\xff\xfe", 11);
  write_file(staging.source() / "data/image.png", binary);
  check_success(staging.stage("jupyter_copy", "alice", "data/image.png", "image.png"),
                "Data staged for user alice with method jupyter_copy");
  auto image = staging.jupyter_file("alice", "image.png");
  CHECK(image["format"] == "base64");
  CHECK(image["content"] == "iVBORw0KGgoA//4=");
  CHECK(staging.records("?limit=1")[0]["bytes"] == 11);
}

TEST_CASE("staging methods: jupyter_copy leaves a file already there alone", "[staging]") {
  Staging staging;
  check_success(staging.stage("jupyter_copy", "alice", "data/file1.txt", "f.txt"),
                "Data staged for user alice with method jupyter_copy");
  int puts = staging.hub_calls()["contents_put"];
  check_success(staging.stage("jupyter_copy", "alice", "data/file2.txt", "f.txt"),
                "Data staged for user alice with method jupyter_copy");
  CHECK(staging.hub_calls()["contents_put"] == puts);
  CHECK(staging.jupyter_file("alice", "f.txt")["content"] == "This is a test file");
}

TEST_CASE("staging methods: jupyter_copy starts a stopped server and follows its progress",
          "[staging]") {
  Staging staging;
  check_success(staging.stage("jupyter_copy", "bob", "data/file2.txt", "file2.txt"),
                "Data staged for user bob with method jupyter_copy");
  auto calls = staging.hub_calls();
  CHECK(calls["spawn"] == 1);
  CHECK(calls["progress"] == 1);
  CHECK(calls["user"] == 2);  // before, and the readiness check after the spawn
  CHECK(staging.jupyter_file("bob", "file2.txt")["content"] == "This is another test file");
}

TEST_CASE("staging methods: jupyter_copy when the spawn fails", "[staging]") {
  Staging staging;
  check_detail(staging.stage("jupyter_copy", "carol", "data/file1.txt", "f.txt"), 500,
               "Unexpected error: Failed to start or verify readiness of server for user carol.");
  CHECK(staging.records("?limit=1")[0]["status"] == "failed");
}

TEST_CASE("staging methods: jupyter_copy with the user's own token", "[staging]") {
  Staging staging;
  check_success(staging.stage("jupyter_copy", "alice", "data/file1.txt", "mine.txt",
                              "&jupyter_token=user-token-alice"),
                "Data staged for user alice with method jupyter_copy");
  CHECK_FALSE(staging.jupyter_file("alice", "mine.txt").is_null());
  auto refused = staging.stage("jupyter_copy", "alice", "data/file1.txt", "other.txt",
                               "&jupyter_token=wrong-token");
  CHECK(refused.status == 500);
  CHECK(detail_of(refused).get<std::string>().rfind("Unexpected error: Failed to copy file: 403",
                                                    0) == 0);
  CHECK(staging.get("/logs/").body.find("user-token-alice") == std::string::npos);
}

TEST_CASE(
    "staging methods: jupyter_copy without a token mints one for the user, never sends the "
    "admin token to the user's server",
    "[staging]") {
  Staging staging;
  check_success(staging.stage("jupyter_copy", "alice", "data/file1.txt", "deep/er/file1.txt"),
                "Data staged for user alice with method jupyter_copy");
  CHECK(staging.jupyter_file("alice", "deep/er/file1.txt")["content"] == "This is a test file");
  check_success(staging.stage("jupyter_copy", "bob", "data/file2.txt", "file2.txt"),
                "Data staged for user bob with method jupyter_copy");
  CHECK(staging.jupyter_file("bob", "file2.txt")["content"] == "This is another test file");
  auto calls = staging.hub_calls();
  CHECK(calls.value("contents_admin_token", 0) == 0);
  CHECK(calls["token"] == 2);  // one per copy, asked with the admin token
  auto minted = staging.minted_tokens();
  REQUIRE(minted.size() == 2);
  for (const auto& token : minted) {
    INFO(token.dump());
    CHECK(token["revoked"] == true);  // once the copy is done
    CHECK(token["asked"]["expires_in"].get<int>() <= 600);
    std::string user = token["user"];
    CHECK(token["asked"]["scopes"] == json::array({"access:servers!user=" + user}));
  }
  // The user's own token needs none.
  check_success(staging.stage("jupyter_copy", "alice", "data/file2.txt", "own.txt",
                              "&jupyter_token=user-token-alice"),
                "Data staged for user alice with method jupyter_copy");
  CHECK(staging.hub_calls()["token"] == 2);
  // Only the admin token mints.
  CHECK(http_request(staging.port(), "POST", "/jhub/hub/api/users/alice/tokens", "{}",
                     "Authorization: token user-token-alice")
            .status == 403);
}

TEST_CASE("staging methods: jupyter_copy checks the hub before the source path", "[staging]") {
  Staging staging;
  auto response = staging.stage("jupyter_copy", "zed", "data/none.txt", "f.txt");
  check_detail(response, 500,
               "Failed to fetch user status: 404 Client Error: Not Found for url: " +
                   staging.hub_url() + "/hub/api/users/zed");
  check_detail(staging.stage("jupyter_copy", "alice", "data/none.txt", "f.txt"), 400,
               "Source path does not exist: " + (staging.source() / "data/none.txt").string());
  check_detail(staging.stage("jupyter_copy", "alice", "data/file1.txt", "../f.txt"), 400,
               "Invalid relative path: ../f.txt");
}

TEST_CASE("staging methods: jupyter_copy with a hub that does not answer", "[staging]") {
  Staging staging(json{{"JUPYTERHUB_URL", "http://127.0.0.1:1"}});
  auto response = staging.stage("jupyter_copy", "alice", "data/file1.txt", "f.txt");
  CHECK(response.status == 500);
  CHECK(detail_of(response).get<std::string>().rfind("Failed to fetch user status: ", 0) == 0);
}

TEST_CASE("staging methods: as root, the copy is given to an existing OS user", "[staging]") {
  if (::geteuid() != 0) {
    WARN("not running as root: chown not tested");
    return;
  }
  Staging staging;
  struct passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  check_success(staging.stage("local_copy", "nobody", "data/folder", "folder"),
                "Data staged for user nobody with method local_copy");
  for (const char* name : {"folder", "folder/file3.txt", "folder/file4.txt"}) {
    struct stat status;
    REQUIRE(::lstat((staging.target() / "nobody" / name).c_str(), &status) == 0);
    INFO(name);
    CHECK(status.st_uid == nobody->pw_uid);
    CHECK(status.st_gid == nobody->pw_gid);
  }
  // A name with no account keeps the server's owner; the copy still succeeds.
  check_success(staging.stage("local_copy", "no_such_account", "data/file1.txt", "f.txt"),
                "Data staged for user no_such_account with method local_copy");
  struct stat status;
  REQUIRE(::lstat((staging.target() / "no_such_account/f.txt").c_str(), &status) == 0);
  CHECK(status.st_uid == 0);
  // local_symlink never chowns the source.
  struct stat source_before;
  ::stat((staging.source() / "data/file2.txt").c_str(), &source_before);
  check_success(staging.stage("local_symlink", "nobody", "data/file2.txt", "l.txt"),
                "Data staged for user nobody with method local_symlink");
  struct stat source_after;
  ::stat((staging.source() / "data/file2.txt").c_str(), &source_after);
  CHECK(source_after.st_uid == source_before.st_uid);
  CHECK((source_after.st_mode & 07777) == (source_before.st_mode & 07777));
}

TEST_CASE("staging methods: a tree with a symlink inside SOURCE copies the file it names",
          "[staging]") {
  Staging staging;
  stdfs::create_symlink("../file1.txt", staging.source() / "data/folder/alias.txt");
  check_success(staging.stage("local_copy", "michele", "data/folder", "folder"),
                "Data staged for user michele with method local_copy");
  auto alias = staging.target() / "michele/folder/alias.txt";
  CHECK(stdfs::is_regular_file(stdfs::symlink_status(alias)));
  CHECK(read_file(alias) == "This is a test file");
  CHECK(mode_of(alias) == 0400);
}
