// The users service's routes with their statuses and messages (specs/users.md §4.4, §4.5, §4.8):
// registration from JSON, form or query; login of pending, wrong and approved users; the login
// limits; the admin API; GET /servicex; the config rules (ENABLE_AUTH, JWT_SECRET_KEY).
#include <fstream>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::TestServer;

namespace {

const json kRestricted = {
    {"message", "Not Authorized: This resource is restricted to administrators."}};

}  // namespace

TEST_CASE("users: registration takes JSON, form or query arguments, as reqparse", "[users]") {
  Users users;
  check_answer(users.register_user("ann@example.org"), 200,
               {{"message", "User ann@example.org added to pending user list"}});
  check_answer(
      http_request(users.port(), "POST", "/registration",
                   "full_name=Bo+B&email=bob%40example.org&password=pw&confirm_password=pw", kForm),
      200, {{"message", "User bob@example.org added to pending user list"}});
  check_answer(
      http_request(
          users.port(), "POST",
          "/registration?full_name=C&email=cy@example.org&password=pw&confirm_password=pw"),
      200, {{"message", "User cy@example.org added to pending user list"}});
  // E-mails are unique whatever their case.
  check_answer(users.register_user("ANN@example.org"), 200,
               {{"message", "User ANN@example.org already exists"}});
  check_answer(users.post("/registration", {{"full_name", "D"},
                                            {"email", "d@example.org"},
                                            {"password", "a"},
                                            {"confirm_password", "b"}}),
               200, {{"message", "Passwords do not match"}});
  for (const std::string missing : {"full_name", "email", "password", "confirm_password"}) {
    json body = {{"full_name", "E"},
                 {"email", "e@example.org"},
                 {"password", "p"},
                 {"confirm_password", "p"}};
    body.erase(missing);
    check_answer(users.post("/registration", body), 400,
                 {{"message", {{missing, "This field cannot be blank"}}}});
  }
  check_answer(
      users.post("/registration",
                 {{"full_name", "E"}, {"email", ""}, {"password", "p"}, {"confirm_password", "p"}}),
      400, {{"message", {{"email", "This field cannot be blank"}}}});
  auto malformed = http_request(users.port(), "POST", "/registration", "{nope", kJson);
  CHECK(malformed.status == 400);
  CHECK(body_of(malformed)["message"].get<std::string>().rfind("Failed to decode JSON object: ",
                                                               0) == 0);
  // The users are pending, with their ids in order after the admin's.
  json pending = body_of(users.get("/pending", users.admin_header()));
  CHECK(pending == json{{"users",
                         {{{"email", "ann@example.org"}, {"id", 2}, {"admin", false}},
                          {{"email", "bob@example.org"}, {"id", 3}, {"admin", false}},
                          {{"email", "cy@example.org"}, {"id", 4}, {"admin", false}}}}});
}

TEST_CASE("users: registering JWT_ADMIN's e-mail makes a pending user, never an admin", "[users]") {
  // Auth off to see the flags; the start hook made the admin (id 1), whose account is then
  // deleted (or its e-mail edited away): the address is free for anyone to type.
  Users users(json{{"ENABLE_AUTH", "false"}});
  check_answer(users.remove("/users/1"), 200, {{"message", "user 1 has been deleted"}});
  check_answer(users.register_user(kAdmin, "typed-password"), 200,
               {{"message", "User " + kAdmin + " added to pending user list"}});
  check_answer(users.login(kAdmin, "typed-password"), 401,
               {{"message", "User " + kAdmin +
                                " is still pending. Contact administrator to approve request"}});
  check_answer(users.get("/users"), 200,
               {{"users", {{{"email", kAdmin}, {"id", 2}, {"admin", false}, {"pending", true}}}}});
}

TEST_CASE("users: login refuses unknown, pending and wrong credentials, then logs in", "[users]") {
  Users users;
  check_answer(users.login("zed@example.org", "pw"), 404,
               {{"message", "User zed@example.org doesn't exist"}});
  REQUIRE(users.register_user("ann@example.org", "secret").status == 200);
  check_answer(
      users.login("ann@example.org", "secret"), 401,
      {{"message",
        "User ann@example.org is still pending. Contact administrator to approve request"}});
  check_answer(users.post("/accept", {{"email", "Ann@Example.org"}}, users.admin_header()), 200,
               {{"message", "user Ann@Example.org now ready for access"}});
  check_answer(users.login("ann@example.org", "wrong"), 401, {{"message", "Wrong credentials"}});
  check_answer(users.post("/login", {{"email", "ann@example.org"}}), 400,
               {{"message", {{"password", "This field cannot be blank"}}}});
  auto response = http_request(users.port(), "POST", "/login",
                               "email=ANN%40example.org&password=secret", kForm);
  REQUIRE(response.status == 200);
  json answer = body_of(response);
  CHECK(answer["message"] == "Logged in as ANN@example.org");
  CHECK(verify(answer["access_token"])["type"] == "access");
  CHECK(verify(answer["refresh_token"])["type"] == "refresh");
  // An approved non-admin is not an admin.
  check_answer(users.get("/users", bearer(answer["access_token"])), 401, kRestricted);
}

TEST_CASE("users: repeated failed logins are refused with 429 per account and per address",
          "[users]") {
  // No admin (and auth off, to approve without one): no login was tried before the test's.
  Users users(json{{"JWT_ADMIN", ""},
                   {"ENABLE_AUTH", "false"},
                   {"LOGIN_MAX_FAILURES", 3},
                   {"LOGIN_MAX_FAILURES_PER_ADDRESS", 5}});
  for (const std::string email : {"ann@example.org", "bob@example.org"}) {
    REQUIRE(users.register_user(email, "secret").status == 200);
    REQUIRE(users.post("/accept", {{"email", email}}).status == 200);
  }
  for (int attempt = 0; attempt < 3; ++attempt)
    CHECK(users.login("ann@example.org", "wrong").status == 401);
  auto refused = users.login("ann@example.org", "secret");
  CHECK(refused.status == 429);
  CHECK(body_of(refused)["message"].get<std::string>().rfind("Too many failed login attempts", 0) ==
        0);
  CHECK(std::stoi(refused.header("retry-after")) > 0);
  // Another account from the same address still may, until the address's limit; unknown
  // e-mails count there too.
  CHECK(users.login("bob@example.org", "secret").status == 200);
  CHECK(users.login("nobody@example.org", "x").status == 404);
  CHECK(users.login("nobody2@example.org", "x").status == 404);
  CHECK(users.login("bob@example.org", "secret").status == 429);
}

TEST_CASE("users: the admin API lists, accepts and deletes users", "[users]") {
  Users users;
  std::string admin = users.admin_header();
  users.approved_user("ann@example.org");
  REQUIRE(users.register_user("bob@example.org").status == 200);
  REQUIRE(users.register_user("cy@example.org").status == 200);
  check_answer(users.get("/users", admin), 200,
               {{"users",
                 {{{"email", kAdmin}, {"id", 1}, {"admin", true}, {"pending", false}},
                  {{"email", "ann@example.org"}, {"id", 2}, {"admin", false}, {"pending", false}},
                  {{"email", "bob@example.org"}, {"id", 3}, {"admin", false}, {"pending", true}},
                  {{"email", "cy@example.org"}, {"id", 4}, {"admin", false}, {"pending", true}}}}});
  check_answer(users.post("/accept", json::object(), admin), 400,
               {{"message", {{"email", "This field cannot be blank"}}}});
  check_answer(users.post("/accept", {{"email", "zed@example.org"}}, admin), 404,
               {{"message", "No user registered with email: zed@example.org"}});
  check_answer(users.remove("/users/3", admin), 200, {{"message", "user 3 has been deleted"}});
  check_answer(users.remove("/users/3", admin), 404, {{"message", "user 3 not found"}});
  check_answer(users.remove("/users/12345", admin), 404, {{"message", "user 12345 not found"}});
  check_answer(users.remove("/users/abc", admin), 404, {{"message", "user abc not found"}});
  // The e-mail of a deleted user is free again.
  check_answer(users.register_user("bob@example.org"), 200,
               {{"message", "User bob@example.org added to pending user list"}});
  check_answer(users.remove("/pending", admin), 200, {{"message", "2 row(s) deleted"}});
  check_answer(users.get("/pending", admin), 200, {{"users", json::array()}});
  REQUIRE(users.register_user("dee@example.org").status == 200);
  // DELETE /users keeps the admins.
  check_answer(users.remove("/users", admin), 200, {{"message", "2 row(s) deleted"}});
  check_answer(users.get("/users", admin), 200,
               {{"users", {{{"email", kAdmin}, {"id", 1}, {"admin", true}, {"pending", false}}}}});
}

TEST_CASE("users: every admin route refuses non-admins with the original's bodies", "[users]") {
  Users users;
  json ann = users.approved_user("ann@example.org");
  REQUIRE(users.register_user("bob@example.org").status == 200);
  struct Route {
    std::string method, path;
  };
  for (const auto& route : std::vector<Route>{{"GET", "/users"},
                                              {"DELETE", "/users"},
                                              {"DELETE", "/users/2"},
                                              {"GET", "/pending"},
                                              {"DELETE", "/pending"},
                                              {"POST", "/accept"}}) {
    INFO(route.method << " " << route.path);
    std::string body = route.method == "POST" ? R"({"email": "bob@example.org"})" : "";
    check_answer(http_request(users.port(), route.method, route.path, body, kJson), 401,
                 {{"message", "Missing Authorization Header"}});
    check_answer(http_request(users.port(), route.method, route.path, body,
                              kJson + "\r\n" + bearer(ann["access_token"])),
                 401, kRestricted);
    check_answer(http_request(users.port(), route.method, route.path, body,
                              kJson + "\r\n" + bearer(mint(access_claims("deleted-sub")))),
                 401, kRestricted);
  }
  // Nothing was changed by the refused calls.
  CHECK(body_of(users.get("/users", users.admin_header()))["users"].size() == 3);
}

TEST_CASE("users: GET /servicex, CORS and Flask-RESTful's answers for unknown paths", "[users]") {
  Users users(json{{"TRANSFORMER_DEFAULT_IMAGE", "sslhep/servicex_func_adl_xaod_transformer:1.0"},
                   {"CODE_GEN_IMAGE", "sslhep/servicex_code_gen_func_adl_xaod:1.0"}});
  auto response = users.get("/servicex");
  check_answer(response, 200,
               {{"app-version", "develop"},
                {"default-transformer", "sslhep/servicex_func_adl_xaod_transformer:1.0"},
                {"code-gen-image", "sslhep/servicex_code_gen_func_adl_xaod:1.0"}});
  CHECK(response.header("access-control-allow-origin") == "*");
  CHECK(users.get("/users").header("access-control-allow-origin") == "*");
  check_answer(users.get("/no/such/path"), 404,
               {{"message",
                 "The requested URL was not found on the server. If you entered the URL manually "
                 "please check "
                 "your spelling and try again."}});
  check_answer(users.get("/login"), 405,
               {{"message", "The method is not allowed for the requested URL."}});
}

TEST_CASE("users: with ENABLE_AUTH false the admin routes are open and tokens still work",
          "[users]") {
  Users users(json{{"ENABLE_AUTH", "false"}});
  CHECK(users.get("/users").status == 200);
  users.approved_user("ann@example.org");
  CHECK(body_of(users.get("/pending"))["users"] == json::array());
  // The configured secret still signs the tokens.
  json answer = users.admin_login();
  CHECK(users.post("/token/refresh", json::object(), bearer(answer["refresh_token"])).status ==
        200);
  verify(answer["access_token"]);
}

TEST_CASE("users: a bad ENABLE_AUTH leaves the service unmounted", "[users]") {
  // The reason ("config: users: ENABLE_AUTH must be a boolean ...") goes to the log.
  TestServer refused(std::vector<TestServer::Service>{}, [&](depot::Options& options) {
    options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
    options.services.push_back(
        {"users", "users", {"/"}, {{"ENABLE_AUTH", "maybe"}, {"JWT_SECRET_KEY", "x"}}});
    options.services.push_back({"hello", "hello", {"/"}});
  });
  CHECK(http_request(refused.port(), "GET", "/servicex").status == 404);
  CHECK(http_request(refused.port(), "GET", "/hello").body == "hello\n");
  TestServer server(std::vector<TestServer::Service>{}, [&](depot::Options& options) {
    options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
    options.services.push_back(
        {"users", "users", {"/"}, {{"ENABLE_AUTH", "True"}, {"JWT_SECRET_KEY", "x"}}});
  });
  CHECK(http_request(server.port(), "GET", "/servicex").status == 200);
  CHECK(http_request(server.port(), "GET", "/users").status == 401);
}

TEST_CASE(
    "users: the default config mounts the service at /servicex with auth on and a generated key",
    "[users]") {
  json config = json::parse(std::ifstream(DEPOT_SOURCE_DIR "/config/depot.json"));
  json section;
  for (const auto& service : config["services"])
    if (service["name"] == "users") section = service;
  REQUIRE(section["mount"] == json::array({"/servicex"}));
  REQUIRE_FALSE(section["config"].contains("JWT_SECRET_KEY"));
  auto data_dir = depot::testing::make_temp_dir("depot-users-key-");
  auto key_file = data_dir / "users" / "jwt_secret_key";
  std::string key;
  for (int start = 0; start < 2; ++start) {  // the key outlives a restart on the same data dir
    TestServer server(std::vector<TestServer::Service>{}, [&](depot::Options& options) {
      options.scripts_dir = DEPOT_SOURCE_DIR "/scripts";
      options.services.push_back({"users", "users", {"/servicex"}, section["config"]});
      options.data_dir = data_dir;
      options.threads = 2;  // both workers load the scripts at once: one key between them
    });
    CHECK(body_of(http_request(server.port(), "GET", "/servicex/servicex"))["app-version"] ==
          "develop");
    CHECK(http_request(server.port(), "GET", "/servicex/users").status == 401);
    REQUIRE(std::filesystem::exists(key_file));
    CHECK((std::filesystem::status(key_file).permissions() & std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    std::ifstream stream(key_file);
    std::string now((std::istreambuf_iterator<char>(stream)), {});
    CHECK(now.size() >= 32);
    if (start == 1) CHECK(now == key);
    key = now;
  }
  std::filesystem::remove_all(data_dir);
}
