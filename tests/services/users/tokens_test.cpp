// The users service's tokens: flask-jwt-extended 3.x claims checked by the test's own HS256,
// tokens minted by the test accepted, every bad token shape answered 401/422 with the library's
// text (never 500), and /token/refresh accepting only the stored refresh token.
#include <regex>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;

namespace {

const std::regex kUuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");

// The admin's identity (its sub), read from a token the service issued.
std::string admin_identity(Users& users) {
  return verify(users.admin_login()["access_token"])["identity"];
}

}  // namespace

TEST_CASE("users: login tokens carry flask-jwt-extended 3.x claims signed with HS256", "[users]") {
  Users users;
  json answer = users.admin_login();
  CHECK(answer["message"] == "Logged in as " + kAdmin);
  json access = verify(answer["access_token"]);
  json refresh = verify(answer["refresh_token"]);
  long long now = now_seconds();
  CHECK(access["type"] == "access");
  CHECK(access["fresh"] == false);
  CHECK(access["iat"].get<long long>() <= now);
  CHECK(access["iat"].get<long long>() >= now - 5);
  CHECK(access["nbf"] == access["iat"]);
  CHECK(access["exp"].get<long long>() == access["iat"].get<long long>() + 21600);
  CHECK(std::regex_match(access["jti"].get<std::string>(), kUuid4));
  CHECK(access["identity"].is_string());
  CHECK(access.size() == 7);
  CHECK(refresh["type"] == "refresh");
  CHECK(refresh["identity"] == access["identity"]);
  CHECK(std::regex_match(refresh["jti"].get<std::string>(), kUuid4));
  CHECK(refresh["jti"] != access["jti"]);
  CHECK_FALSE(refresh.contains("exp"));  // JWT_REFRESH_TOKEN_EXPIRES defaults to false
  CHECK_FALSE(refresh.contains("fresh"));
}

TEST_CASE("users: token lifetimes come from JWT_ACCESS_TOKEN_EXPIRES and JWT_REFRESH_TOKEN_EXPIRES",
          "[users]") {
  Users users(json{{"JWT_ACCESS_TOKEN_EXPIRES", 60}, {"JWT_REFRESH_TOKEN_EXPIRES", "120"}});
  json answer = users.admin_login();
  json access = verify(answer["access_token"]);
  json refresh = verify(answer["refresh_token"]);
  CHECK(access["exp"].get<long long>() - access["iat"].get<long long>() == 60);
  CHECK(refresh["exp"].get<long long>() - refresh["iat"].get<long long>() == 120);
}

TEST_CASE("users: a token minted by another HS256 implementation is accepted", "[users]") {
  Users users;
  std::string token = mint(access_claims(admin_identity(users)));
  auto response = users.get("/users", bearer(token));
  CHECK(response.status == 200);
  CHECK(body_of(response)["users"].size() == 1);
  // Without the optional claims flask-jwt-extended fills in (type → access, no jti, no exp).
  token = mint({{"identity", admin_identity(users)}});
  CHECK(users.get("/users", bearer(token)).status == 200);
}

TEST_CASE("users: every bad token shape is a 401 or 422 with the library's message", "[users]") {
  Users users;
  std::string identity = admin_identity(users);
  json refresh_token = users.admin_login()["refresh_token"];
  long long now = now_seconds();
  json claims = access_claims(identity);
  std::string good = mint(claims);
  std::string tampered = good.substr(0, good.find('.') + 1) +
                         base64url(json(access_claims("someone-else")).dump()) +
                         good.substr(good.rfind('.'));
  json future = claims;
  future["nbf"] = now + 3600;
  json expired = claims;
  expired["exp"] = now - 10;
  json anonymous = claims;
  anonymous.erase("identity");
  json bad_exp = claims;
  bad_exp["exp"] = "soon";
  std::string alg_none = base64url(json({{"typ", "JWT"}, {"alg", "none"}}).dump()) + "." +
                         base64url(claims.dump()) + ".";
  struct Case {
    std::string header;
    int status;
    json body;
  };
  std::vector<Case> cases = {
      {"", 401, {{"message", "Missing Authorization Header"}}},
      {"Authorization: Token " + good,
       422,
       {{"msg", "Bad Authorization header. Expected value 'Bearer <JWT>'"}}},
      {"Authorization: Bearer",
       422,
       {{"msg", "Bad Authorization header. Expected value 'Bearer <JWT>'"}}},
      {"Authorization: Bearer a b",
       422,
       {{"msg", "Bad Authorization header. Expected value 'Bearer <JWT>'"}}},
      {bearer("abc"), 422, {{"msg", "Not enough segments"}}},
      {bearer("a.b"), 422, {{"msg", "Not enough segments"}}},
      {bearer("!!!.e30.sig"), 422, {{"msg", "Invalid header padding"}}},
      {bearer(base64url("{nope") + ".e30.c2ln"),
       422,
       {{"msg",
         "Invalid header string: Expecting property name enclosed in double quotes: line 1 column "
         "2 (char 1)"}}},
      {bearer(good.substr(0, good.rfind('.')) + ".!!"), 422, {{"msg", "Invalid crypto padding"}}},
      {bearer(tampered), 422, {{"msg", "Signature verification failed"}}},
      {bearer(alg_none), 422, {{"msg", "The specified alg value is not allowed"}}},
      {bearer(mint(claims, "another-secret")), 422, {{"msg", "Signature verification failed"}}},
      {bearer(mint(future)), 422, {{"msg", "The token is not yet valid (nbf)"}}},
      {bearer(mint(expired)), 401, {{"msg", "Token has expired"}}},
      {bearer(mint(bad_exp)), 422, {{"msg", "Expiration Time claim (exp) must be an integer."}}},
      {bearer(refresh_token), 422, {{"msg", "Only access tokens are allowed"}}},
      {bearer(mint(anonymous)), 422, {{"msg", "Missing claim: identity"}}},
      {bearer(mint(json::array({1, 2}))),
       422,
       {{"msg", "Invalid payload string: must be a json object"}}},
  };
  for (const std::string path : {"/users", "/pending"}) {
    for (const auto& c : cases) {
      INFO(path << " " << c.header);
      check_answer(users.get(path, c.header), c.status, c.body);
    }
  }
  // The same shapes on a POST route, with a body.
  for (const auto& c : cases) {
    INFO("/accept " << c.header);
    check_answer(users.post("/accept", {{"email", kAdmin}}, c.header), c.status, c.body);
  }
  // A well-formed token of nobody.
  check_answer(users.get("/users", bearer(mint(access_claims("nobody")))), 401,
               {{"message", "Not Authorized: This resource is restricted to administrators."}});
}

TEST_CASE("users: /token/refresh accepts only the stored refresh token", "[users]") {
  Users users;
  json first = users.admin_login();
  auto response = users.post("/token/refresh", json::object(), bearer(first["refresh_token"]));
  REQUIRE(response.status == 200);
  json answer = body_of(response);
  CHECK(answer.size() == 1);
  json access = verify(answer["access_token"]);
  CHECK(access["type"] == "access");
  CHECK(users.get("/users", bearer(answer["access_token"])).status == 200);

  check_answer(users.post("/token/refresh", json::object()), 401,
               {{"msg", "Missing Authorization Header"}});
  check_answer(users.post("/token/refresh", json::object(), bearer(first["access_token"])), 422,
               {{"msg", "Only refresh tokens are allowed"}});
  check_answer(users.post("/token/refresh", json::object(), bearer("x.y.z")), 422,
               {{"msg", "Invalid header padding"}});

  // A second login supersedes the first refresh token.
  json second = users.admin_login();
  check_answer(users.post("/token/refresh", json::object(), bearer(first["refresh_token"])), 401,
               {{"message", "Invalid or outdated refresh token"}});
  CHECK(users.post("/token/refresh", json::object(), bearer(second["refresh_token"])).status ==
        200);

  // A refresh token with a foreign jti, even correctly signed.
  json foreign = verify(second["refresh_token"]);
  foreign["jti"] = "00000000-0000-4000-8000-000000000000";
  check_answer(users.post("/token/refresh", json::object(), bearer(mint(foreign))), 401,
               {{"message", "Invalid or outdated refresh token"}});

  // A deleted user's refresh token: 401, not the original's 500.
  json bob = users.approved_user("bob@example.org");
  std::string bob_id = std::to_string(
      body_of(users.get("/users", users.admin_header()))["users"][1]["id"].get<int>());
  REQUIRE(users.remove("/users/" + bob_id, users.admin_header()).status == 200);
  check_answer(users.post("/token/refresh", json::object(), bearer(bob["refresh_token"])), 401,
               {{"message", "Invalid or outdated refresh token"}});
}
