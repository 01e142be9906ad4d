// The staging service behind the users policy, with the auth rules config/users.json ships: the
// web page opens without a token; a signed-in user who is not an admin stages for, and reads the
// records of, their own username (their lower-cased e-mail) only; admins for anyone.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/services/staging/staging_fixture.hpp"
#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::HttpResponse;
using depot::testing::staging::write_file;
namespace stdfs = std::filesystem;

namespace {

// The staging section of the shipped config/users.json.
json shipped_staging_section() {
  std::ifstream in(DEPOT_SOURCE_DIR "/config/users.json");
  json config = json::parse(in);
  for (const json& service : config["services"]) {
    if (service["name"] == "staging") return service["config"];
  }
  throw std::runtime_error("config/users.json has no staging service");
}

class GuardedStaging {
 public:
  GuardedStaging() : root_(depot::testing::make_temp_dir("depot-staging-guard")) {
    write_file(source() / "data/file1.txt", "This is a test file");
    stdfs::create_directories(target());
    json section = shipped_staging_section();
    section["JWT_SECRET_KEY"] = kSecret;  // the users service's, as a deployment shares it
    section["SOURCE_STORAGE_PATH"] = source().string();
    section["TARGET_STORAGE_PATH"] = target().string();
    depot::testing::add_service(users.server(), {"staging", "staging", {"/staging"}, section});
  }
  ~GuardedStaging() {
    std::error_code ignored;
    stdfs::remove_all(root_, ignored);
  }
  stdfs::path source() const { return root_ / "source"; }
  stdfs::path target() const { return root_ / "target"; }

  HttpResponse stage(const std::string& username, const std::string& header,
                     const std::string& relative = "p/file1.txt") {
    json body = {
        {"data", {{"local_path_on_storage", "data/file1.txt"}, {"relative_path", relative}}}};
    return users.post("/staging/stage-data/?method=local_copy&username=" + username, body, header);
  }
  json records(const std::string& query, const std::string& header) {
    auto response = users.get("/staging/stage-data/records" + query, header);
    REQUIRE(response.status == 200);
    return json::parse(response.body)["records"];
  }

  Users users;

 private:
  stdfs::path root_;
};

}  // namespace

TEST_CASE("staging guard: the web page and its files open without a token, the API does not",
          "[staging]") {
  GuardedStaging staging;
  for (std::string path : {"/staging/", "/staging/web/app.js", "/staging/web/style.css"}) {
    INFO(path);
    CHECK(staging.users.get(path).status == 200);
  }
  CHECK(staging.users.get("/staging/web/missing.js").status == 404);
  CHECK(staging.users.get("/staging").status == 307);
  CHECK(staging.users.get("/staging/config/allowed-methods/").status == 200);
  CHECK(staging.users.get("/staging/stage-data/records").status == 401);
  CHECK(staging.users.get("/staging/config/").status == 401);
  CHECK(staging.users.get("/staging/logs/", staging.users.admin_header()).status == 200);
  std::string ann = bearer(staging.users.approved_user("ann@example.org")["access_token"]);
  CHECK(staging.users.get("/staging/logs/", ann).status == 401);
}

TEST_CASE("staging guard: a user stages for their own e-mail only, an admin for anyone",
          "[staging]") {
  GuardedStaging staging;
  std::string admin = staging.users.admin_header();
  std::string ann = bearer(staging.users.approved_user("Ann@Example.org")["access_token"]);

  check_answer(staging.stage("bob", ann), 403,
               {{"detail", "Forbidden: you may only use your own username, ann@example.org"}});
  CHECK_FALSE(stdfs::exists(staging.target() / "bob"));
  check_answer(staging.stage("Ann@Example.org", ann), 403,
               {{"detail", "Forbidden: you may only use your own username, ann@example.org"}});
  check_answer(staging.stage("ann@example.org", ann), 200,
               {{"status", "success"},
                {"message", "Data staged for user ann@example.org with method local_copy"}});
  CHECK(depot::testing::staging::read_file(staging.target() / "ann@example.org/p/file1.txt") ==
        "This is a test file");
  check_answer(
      staging.stage("bob", admin), 200,
      {{"status", "success"}, {"message", "Data staged for user bob with method local_copy"}});
  CHECK(stdfs::exists(staging.target() / "bob/p/file1.txt"));
  // An unsigned request never reaches the service.
  CHECK(staging.stage("bob", "", "q/file1.txt").status == 401);
  CHECK_FALSE(stdfs::exists(staging.target() / "bob/q"));

  auto own = staging.records("", ann);
  REQUIRE(own.size() == 1);
  CHECK(own[0]["username"] == "ann@example.org");
  CHECK(staging.records("?username=ann@example.org", ann) == own);
  check_answer(staging.users.get("/staging/stage-data/records?username=bob", ann), 403,
               {{"detail", "Forbidden: you may only use your own username, ann@example.org"}});
  auto everyone = staging.records("", admin);
  REQUIRE(everyone.size() == 2);
  CHECK(staging.records("?username=bob", admin).size() == 1);

  std::string bobs = everyone[0]["id"];
  check_answer(staging.users.get("/staging/stage-data/records/" + bobs, ann), 404,
               {{"detail", "Record not found"}});
  CHECK(staging.users.get("/staging/stage-data/records/" + bobs, admin).status == 200);
  std::string anns = own[0]["id"];
  CHECK(staging.users.get("/staging/stage-data/records/" + anns, ann).status == 200);
}
