// The file cache without KBASE_AUTH_URL: Depot's own users service is its token authority. Its
// access tokens (signed with the key the users service generated) name the caller; cache ids are
// scoped to "depot-users:<sub>", so two logins of one user share them and other users do not.
#include "tests/services/file_cache/file_cache_fixture.hpp"
#include "tests/services/users/users_fixture.hpp"

namespace file_cache = depot::testing::file_cache;
using namespace depot::testing::users;
using depot::testing::http_request;

TEST_CASE("file cache: the users service's tokens when no KBASE_AUTH_URL is set", "[file_cache]") {
  unsetenv("KBASE_AUTH_URL");
  unsetenv("JWT_SECRET_KEY");
  Users users(json{{"JWT_SECRET_KEY", ""}});  // the generated key (users/secret.lua)
  REQUIRE(users.server().server().add_service({"file_cache", "file_cache", {"/files"}}).empty());
  const uint16_t port = users.port();
  std::string ann = "Authorization: Bearer " +
                    users.approved_user("ann@example.org")["access_token"].get<std::string>();
  std::string ann_again =
      "Authorization: Bearer " +
      body_of(users.login("ann@example.org", "password"))["access_token"].get<std::string>();
  std::string bob = "Authorization: Bearer " +
                    users.approved_user("bob@example.org")["access_token"].get<std::string>();
  const std::string body = R"({"dataset": "shared body"})";

  auto created = file_cache::post_cache_id(port, body, ann, "/files");
  REQUIRE(created.status == 200);
  std::string id = body_of(created)["cache_id"];
  CHECK(body_of(file_cache::post_cache_id(port, body, ann_again, "/files"))["cache_id"] == id);
  std::string bobs = body_of(file_cache::post_cache_id(port, body, bob, "/files"))["cache_id"];
  CHECK(bobs != id);
  CHECK(file_cache::upload(port, id, "a.txt", "ann's bytes", ann, "/files").status == 200);
  auto downloaded = http_request(port, "GET", "/files/v1/cache/" + id, "", ann_again);
  CHECK(downloaded.body == "ann's bytes");
  // Another user's id is not bob's, as with KBase tokens.
  file_cache::check_error(http_request(port, "GET", "/files/v1/cache/" + id, "", bob), 403,
                          "You do not have access to that cache");

  // Refused: no header (400, as before); a token the users service did not sign, a refresh
  // token, the bare token without "Bearer", a deleted user's token (403 with the reason).
  file_cache::check_error(file_cache::post_cache_id(port, body, "X-None: 1", "/files"), 400,
                          "Missing header: Authorization");
  auto forged = file_cache::post_cache_id(
      port, body, bearer(mint(access_claims("someone"), "not-the-key")), "/files");
  file_cache::check_error(forged, 403, "Signature verification failed");
  std::string refresh = body_of(users.login("ann@example.org", "password"))["refresh_token"];
  file_cache::check_error(file_cache::post_cache_id(port, body, bearer(refresh), "/files"), 403,
                          "Only access tokens are allowed");
  file_cache::check_error(
      file_cache::post_cache_id(port, body, "Authorization: " + refresh, "/files"), 403,
      "Bad Authorization header. Expected value 'Bearer <JWT>'");
  REQUIRE(users.remove("/users/3", users.admin_header()).status == 200);  // bob
  auto gone = file_cache::post_cache_id(port, body, bob, "/files");
  CHECK(gone.status == 403);
  CHECK_THAT(file_cache::error_of(gone),
             Catch::StartsWith("Not Authorized: No user found matching this API token."));
}
