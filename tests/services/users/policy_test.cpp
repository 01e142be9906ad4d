// The users policy in front of another service (config "auth": "users"): auth_required and
// admin_required per method and route, req.user for handlers, the original's 401 bodies, and
// everything let through with ENABLE_AUTH false; the guarded service's API pages stay open.
#include <fstream>
#include <sstream>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;

namespace {

const char* kStaging = R"(
-- A service guarded by the users policy: it answers who asked.
local json = require "json"
local service = ...
require("users.policy").guard(service)
local function who(req) return { email = req.user and req.user.email or json.null } end
service:get("/files", who)
service:get("/files/public", who)
service:get("/web/*file", who)
service:delete("/files", who)
service:get("/health", function() return { status = "ok" } end, { summary = "Up?" })
require("openapi").serve(service, { title = "Files", version = "1" })
)";

const json kRules = {
    {"GET /health", "none"}, {"GET /files/public", "none"}, {"DELETE", "admin"}, {"*", "user"}};

// A users service and the staging service above at /staging, guarded by `section`.
std::unique_ptr<Users> with_staging(Users*& users, json section,
                                    json users_config = json::object()) {
  auto server = std::make_unique<Users>(users_config);
  users = server.get();
  server->server().write_script("staging", kStaging);
  std::string error = server->server().server().add_service(
      {"staging", server->server().scripts_dir() / "staging", {"/staging"}, section});
  if (!error.empty()) throw std::runtime_error("staging did not load: " + error);
  return server;
}

}  // namespace

TEST_CASE("users policy: guards another service per method and route, with req.user", "[users]") {
  Users* users = nullptr;
  auto owner = with_staging(users, {{"auth", "users"},
                                    {"ENABLE_AUTH", "true"},
                                    {"JWT_SECRET_KEY", kSecret},
                                    {"auth_rules", kRules}});
  std::string admin = users->admin_header();
  json ann = users->approved_user("ann@example.org");
  std::string ann_header = bearer(ann["access_token"]);

  check_answer(users->get("/staging/files"), 401, {{"message", "Missing Authorization Header"}});
  check_answer(users->get("/staging/files", ann_header), 200, {{"email", "ann@example.org"}});
  check_answer(users->get("/staging/files", admin), 200, {{"email", kAdmin}});
  check_answer(users->get("/staging/files", bearer("abc")), 422, {{"msg", "Not enough segments"}});
  check_answer(users->get("/staging/files", bearer(ann["refresh_token"])), 422,
               {{"msg", "Only access tokens are allowed"}});
  check_answer(users->get("/staging/files", bearer(mint(access_claims("gone")))), 401,
               {{"message",
                 "Not Authorized: No user found matching this API token. Your account may have "
                 "been deleted. "
                 "Please visit the ServiceX website to obtain a new API token."}});
  // Open routes: no token needed, and none looked at.
  check_answer(users->get("/staging/health"), 200, {{"status", "ok"}});
  check_answer(users->get("/staging/files/public", bearer("garbage")), 200, {{"email", nullptr}});
  // DELETE needs an admin.
  check_answer(users->remove("/staging/files", ann_header), 401,
               {{"message", "Not Authorized: This resource is restricted to administrators."}});
  check_answer(users->remove("/staging/files", admin), 200, {{"email", kAdmin}});
  // A user put back to pending (deleted and registered again: a new identity) loses access.
  REQUIRE(users->remove("/users/2", admin).status == 200);
  check_answer(users->get("/staging/files", ann_header), 401,
               {{"message",
                 "Not Authorized: No user found matching this API token. Your account may have "
                 "been deleted. "
                 "Please visit the ServiceX website to obtain a new API token."}});
}

TEST_CASE("users policy: a rule holds for every spelling of its path and for HEAD", "[users]") {
  Users* users = nullptr;
  auto owner = with_staging(
      users, {{"auth", "users"},
              {"ENABLE_AUTH", "true"},
              {"JWT_SECRET_KEY", kSecret},
              {"auth_rules", {{"GET /files/", "admin"}, {"GET /web/*", "none"}, {"*", "user"}}}});
  std::string admin = users->admin_header();
  std::string ann = bearer(users->approved_user("ann@example.org")["access_token"]);
  const json not_admin = {
      {"message", "Not Authorized: This resource is restricted to administrators."}};
  // The router serves all of these from the /files route: the admin rule must hold for each.
  for (const char* path :
       {"/staging/files", "/staging/files/", "//staging//files", "/staging/files//"}) {
    INFO(path);
    check_answer(users->get(path, ann), 401, not_admin);
    check_answer(users->get(path, admin), 200, {{"email", kAdmin}});
  }
  // HEAD runs the GET route, so it follows the GET rule.
  CHECK(depot::testing::http_request(users->port(), "HEAD", "/staging/files", "", ann).status ==
        401);
  CHECK(depot::testing::http_request(users->port(), "HEAD", "/staging/files", "", admin).status ==
        200);
  // An exact rule is only that path; "/*" covers the path and everything under it.
  check_answer(users->get("/staging/files/public", ann), 200, {{"email", "ann@example.org"}});
  CHECK(users->get("/staging/files/public").status == 401);
  for (const char* path :
       {"/staging/web", "/staging/web/", "/staging/web/app.js", "/staging//web/lib/x.css"}) {
    INFO(path);
    check_answer(users->get(path), 200, {{"email", nullptr}});
  }
}

TEST_CASE("users policy: a guarded service's API pages open without a token", "[users]") {
  Users* users = nullptr;
  auto owner = with_staging(users, {{"auth", "users"},
                                    {"ENABLE_AUTH", "true"},
                                    {"JWT_SECRET_KEY", kSecret},
                                    {"auth_rules", {{"*", "admin"}}}});
  CHECK(users->get("/staging/files").status == 401);
  auto document = users->get("/staging/openapi.json");
  REQUIRE(document.status == 200);
  json paths = json::parse(document.body)["paths"];
  CHECK(paths["/health"]["get"]["summary"] == "Up?");
  CHECK(paths["/files"].contains("delete"));
  auto page = users->get("/staging/docs");
  CHECK(page.status == 200);
  CHECK(page.body.find("data-openapi=\"/staging/openapi.json\"") != std::string::npos);
}

TEST_CASE("users policy: a pending user's valid token is refused with the pending message",
          "[users]") {
  Users* users = nullptr;
  auto owner = with_staging(
      users, {{"auth", "users"}, {"ENABLE_AUTH", "true"}, {"JWT_SECRET_KEY", kSecret}});
  json ann = users->approved_user("ann@example.org");
  // The API cannot put a user back to pending: a helper service of the test does, on the store.
  users->server().write_script("seed", R"(
    local store = require "users.store"
    local service = ...
    service:post("/pending/:email", function(req)
      local user = store.by_email(req.params.email)
      store.change(user.id, function(stored) stored.pending = true end)
    end))");
  REQUIRE(users->server()
              .server()
              .add_service({"seed", users->server().scripts_dir() / "seed", {"/seed"}})
              .empty());
  REQUIRE(http_request(users->port(), "POST", "/seed/pending/ann@example.org").status == 204);
  check_answer(users->get("/staging/files", bearer(ann["access_token"])), 401,
               {{"message",
                 "Not Authorized: Your account is still pending. An administrator should approve "
                 "it shortly. "
                 "If not, please contact the ServiceX admins via email or Slack."}});
}

TEST_CASE("users policy: ENABLE_AUTH false lets everything through, no auth key, no policy",
          "[users]") {
  Users* users = nullptr;
  auto owner =
      with_staging(users, {{"auth", "users"}, {"ENABLE_AUTH", "false"}, {"auth_rules", kRules}});
  check_answer(users->get("/staging/files"), 200, {{"email", nullptr}});
  check_answer(users->remove("/staging/files"), 200, {{"email", nullptr}});
  Users* other = nullptr;
  auto second = with_staging(other, json::object());
  check_answer(other->get("/staging/files"), 200, {{"email", nullptr}});
}

TEST_CASE("users policy: an unknown rule refuses the scripts and names the rule", "[users]") {
  Users users;
  users.server().write_script("staging", kStaging);
  std::string error = users.server().server().add_service(
      {"staging",
       users.server().scripts_dir() / "staging",
       {"/staging"},
       {{"auth", "users"}, {"auth_rules", {{"GET", "admins"}}}}});
  CHECK(error.find("auth_rules[\"GET\"] must be \"user\", \"admin\" or \"none\"") !=
        std::string::npos);
}

TEST_CASE("users policy: an edited policy script serves after a reload of the running server",
          "[users]") {
  auto scripts = depot::testing::make_temp_dir("depot-users-scripts");
  std::filesystem::copy(DEPOT_SOURCE_DIR "/scripts", scripts,
                        std::filesystem::copy_options::recursive);
  {
    Users users(json::object(), scripts);
    json ann = users.approved_user("ann@example.org");
    check_answer(users.get("/users", bearer(ann["access_token"])), 401,
                 {{"message", "Not Authorized: This resource is restricted to administrators."}});
    auto policy = scripts / "users" / "policy.lua";
    std::stringstream text;
    text << std::ifstream(policy).rdbuf();
    std::string source = text.str();
    auto at = source.find("This resource is restricted to administrators.");
    REQUIRE(at != std::string::npos);
    source.replace(at, 46, "Admins only (edited on the live server).");
    std::ofstream(policy) << source;
    REQUIRE(users.server().server().reload().empty());
    check_answer(users.get("/users", bearer(ann["access_token"])), 401,
                 {{"message", "Not Authorized: Admins only (edited on the live server)."}});
    CHECK(users.get("/users", users.admin_header()).status == 200);
  }
  std::filesystem::remove_all(scripts);
}
