// The users service's web sign-in over HTTP against the stub OpenID provider served by the same
// Depot (tests/stubs/oidc): the authorization-code flow with PKCE through to a profile, a pending
// account, approval and a servicex.yaml whose token works at /token/refresh; and every refusal of
// the callback (bad state, replayed code, wrong audience, expired, tampered or unsigned ID token,
// wrong nonce) and of a form POST without its CSRF token.
#include <regex>

#include "tests/services/users/users_fixture.hpp"
#include "tests/support/stub_server.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::HttpResponse;

namespace {

const std::string kIdentityEmail = "alice@example.org";

// The users service at `mount` with the stub provider at /idp on the same server.
class WebSignIn {
 public:
  explicit WebSignIn(json config = json::object(), const std::string& mount = "/") : mount_(mount) {
    server_ = depot::testing::serve_stubs({{"oidc", "/idp"}, {"notify_sink", "/sink"}});
    json settings = test_settings();
    settings.update({{"OIDC_ISSUER", depot::testing::url_on(*server_, "/idp")},
                     {"OIDC_CLIENT_ID", "depot-test-client"},
                     {"OIDC_CLIENT_SECRET", "depot-test-secret"},
                     {"SECRET_KEY", "web-session-secret"},
                     {"CODE_GEN_IMAGE", "sslhep/servicex_code_gen_func_adl_xaod:develop"}});
    settings = with_config(settings, config, depot::testing::url_on(*server_, "/sink/in"));
    depot::testing::add_service(*server_, {"users", "users", {mount}, settings});
    // The start hook makes JWT_ADMIN's account; tests expect it to be there.
    admin_login_when_ready(port(), path("/login"), settings["JWT_ADMIN"].get<std::string>());
  }

  uint16_t port() const { return server_->port(); }
  // `route` under the mount.
  std::string path(const std::string& route) const { return (mount_ == "/" ? "" : mount_) + route; }

  // A request carrying the session cookie, which it then updates from the answer.
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body = "", const std::string& headers = "") {
    std::string all = headers;
    if (!cookie.empty()) all += (all.empty() ? "" : "\r\n") + std::string("Cookie: ") + cookie;
    HttpResponse response = http_request(port(), method, target, body, all);
    std::string set = response.header("set-cookie");
    if (!set.empty()) cookie = set.substr(0, set.find(';'));
    return response;
  }

  // The path and query of an absolute URL on this server.
  std::string local(const std::string& url) {
    std::string origin = "http://127.0.0.1:" + std::to_string(port());
    REQUIRE(url.rfind(origin, 0) == 0);
    return url.substr(origin.size());
  }

  void misbehave(const json& control) {
    REQUIRE(http_request(port(), "PUT", "/idp/control", control.dump(), kJson).status == 200);
  }

  // /sign-in, then the provider's authorize: the callback URL the provider sends the browser to.
  std::string authorize() {
    HttpResponse start = request("GET", path("/sign-in"));
    REQUIRE(start.status == 302);
    std::string location = start.header("location");
    CHECK(location.find("code_challenge_method=S256") != std::string::npos);
    HttpResponse approved = http_request(port(), "GET", local(location));
    REQUIRE(approved.status == 302);
    return local(approved.header("location"));
  }

  std::string csrf() {
    HttpResponse page = request("GET", "/profile/new");
    std::smatch match;
    REQUIRE(
        std::regex_search(page.body, match, std::regex("name=\"csrf_token\" value=\"([^\"]+)\"")));
    return match[1];
  }

  std::string cookie;

 private:
  std::string mount_;
  std::unique_ptr<depot::testing::TestServer> server_;
};

std::string form_body(const std::string& csrf) {
  return "csrf_token=" + csrf +
         "&name=Alice+Example&email=alice%40example.org&institution=Example+U&experiment=ATLAS";
}

}  // namespace

TEST_CASE("web sign-in: profile, pending, approval, servicex.yaml whose token refreshes",
          "[users][oidc]") {
  WebSignIn web(json{{"SIGNUP_WEBHOOK_URL", "{sink}/signup"}});
  HttpResponse callback = web.request("GET", web.authorize());
  REQUIRE(callback.status == 302);
  CHECK(callback.header("location") == "/profile/new");
  CHECK(callback.header("set-cookie").find("HttpOnly; SameSite=Lax") != std::string::npos);

  HttpResponse form = web.request("GET", "/profile/new");
  CHECK(form.status == 200);
  CHECK(form.body.find("value=\"alice@example.org\"") !=
        std::string::npos);  // prefilled from the ID token

  HttpResponse without_token = web.request("POST", "/profile/new", form_body("forged"), kForm);
  CHECK(without_token.status == 403);
  HttpResponse created = web.request("POST", "/profile/new", form_body(web.csrf()), kForm);
  REQUIRE(created.status == 302);
  CHECK(created.header("location") == "/profile");
  // The Slack sign-up message, as /registration sends it (the sink has it before the redirect).
  json signups = json::parse(http_request(web.port(), "GET", "/sink/out/signup").body)["requests"];
  REQUIRE(signups.size() == 1);
  CHECK(json::parse(signups[0]["body"].get<std::string>())["text"] ==
        "New signup from alice@example.org.");
  HttpResponse profile = web.request("GET", "/profile");
  CHECK(profile.body.find("Your account is pending approval.") != std::string::npos);

  HttpResponse pending_yaml = web.request("GET", "/.servicex");
  REQUIRE(pending_yaml.status == 200);
  std::smatch match;
  REQUIRE(std::regex_search(pending_yaml.body, match, std::regex("token: (\\S+)")));
  std::string refresh = match[1];

  HttpResponse admin =
      http_request(web.port(), "POST", "/login",
                   json({{"email", kAdmin}, {"password", kAdminPassword}}).dump(), kJson);
  REQUIRE(admin.status == 200);
  HttpResponse accepted =
      http_request(web.port(), "POST", "/accept", json({{"email", kIdentityEmail}}).dump(),
                   kJson + "\r\n" + bearer(body_of(admin)["access_token"]));
  CHECK(accepted.status == 200);

  HttpResponse yaml = web.request("GET", "/.servicex");
  CHECK(yaml.header("content-disposition") == "attachment; filename=servicex.yaml");
  std::string endpoint = "http://127.0.0.1:" + std::to_string(web.port()) + "/";
  CHECK(yaml.body == "api_endpoints:\n  - name: xaod\n    endpoint: " + endpoint +
                         "\n    token: " + refresh + "\n    type: xaod\n");
  HttpResponse access = http_request(web.port(), "POST", "/token/refresh", "", bearer(refresh));
  REQUIRE(access.status == 200);
  json claims = verify(body_of(access)["access_token"]);
  CHECK(claims["identity"] == "7f7a3c9e-1d2b-4c5a-9e8f-0a1b2c3d4e5f");  // the provider's subject

  // A new API token revokes the old one.
  HttpResponse page = web.request("GET", "/profile");
  REQUIRE(
      std::regex_search(page.body, match, std::regex("name=\"csrf_token\" value=\"([^\"]+)\"")));
  CHECK(web.request("POST", "/api-token", "csrf_token=" + std::string(match[1]), kForm).status ==
        302);
  CHECK(http_request(web.port(), "POST", "/token/refresh", "", bearer(refresh)).status == 401);

  // Signing in again finds the account by the provider's subject.
  web.cookie.clear();
  HttpResponse again = web.request("GET", web.authorize());
  CHECK(again.header("location") == "/profile");
}

TEST_CASE("web sign-in: JWT_ADMIN's e-mail links to the admin account on its first sign-in",
          "[users][oidc]") {
  WebSignIn web(json{{"JWT_ADMIN", kIdentityEmail}});
  HttpResponse callback = web.request("GET", web.authorize());
  CHECK(callback.header("location") == "/profile");
  CHECK(web.request("GET", "/profile").body.find("administrator") != std::string::npos);
}

TEST_CASE("web sign-in refuses what the callback must not accept", "[users][oidc]") {
  WebSignIn web;
  auto refused = [&](const std::string& target, const std::string& text) {
    HttpResponse response = web.request("GET", target);
    INFO(response.body);
    CHECK(response.status == 400);
    CHECK(response.body.find(text) != std::string::npos);
    CHECK(response.header("location").empty());
  };

  SECTION("a state that is not the session's") {
    std::string callback = web.authorize();
    refused(std::regex_replace(callback, std::regex("state=[^&]+"), "state=forged"),
            "not the one this browser started");
  }
  SECTION("a callback without the session that started it") {
    std::string callback = web.authorize();
    web.cookie.clear();
    refused(callback, "not the one this browser started");
  }
  SECTION("a code used twice") {
    std::string first = web.authorize();
    CHECK(web.request("GET", first).status == 302);
    refused(first, "not the one this browser started");  // the session's sign-in is spent
    // A new sign-in's state with the old code: the provider refuses it.
    std::string second = web.authorize();
    std::smatch code;
    REQUIRE(std::regex_search(first, code, std::regex("code=([^&]+)")));
    refused(std::regex_replace(second, std::regex("code=[^&]+"), "code=" + std::string(code[1])),
            "the token endpoint refused the code (invalid_grant)");
  }
  SECTION("an ID token for another client") {
    web.misbehave({{"claims", {{"aud", "someone-else"}}}});
    refused(web.authorize(), "the ID token was not issued to this client");
  }
  SECTION("several audiences, the token's azp another client") {
    web.misbehave({{"claims", {{"aud", {"depot-test-client", "other"}}, {"azp", "other"}}}});
    refused(web.authorize(), "the ID token was not issued to this client");
  }
  SECTION("an expired ID token") {
    web.misbehave({{"claims", {{"exp", now_seconds() - 3600}}}});
    refused(web.authorize(), "the ID token has expired");
  }
  SECTION("a tampered ID token") {
    web.misbehave({{"tamper", true}});
    refused(web.authorize(), "the ID token&#39;s signature does not verify");
  }
  SECTION("an unsigned ID token (alg none)") {
    web.misbehave({{"alg_none", true}});
    refused(web.authorize(), "alg none is not allowed");
  }
  SECTION("another issuer") {
    web.misbehave({{"claims", {{"iss", "https://evil.example"}}}});
    refused(web.authorize(), "the ID token&#39;s issuer is not the provider");
  }
  SECTION("another sign-in's nonce") {
    web.misbehave({{"claims", {{"nonce", "replayed-nonce"}}}});
    refused(web.authorize(), "nonce is not this sign-in");
  }
}

TEST_CASE("web sign-in with an ES256 key, and the provider's error", "[users][oidc]") {
  WebSignIn web;
  web.misbehave({{"kid", "test-ec"}});
  CHECK(web.request("GET", web.authorize()).header("location") == "/profile/new");
  HttpResponse denied =
      web.request("GET", "/auth-callback?error=access_denied&error_description=User+said+no");
  CHECK(denied.status == 302);
  CHECK(web.request("GET", "/").body.find("Sign-in failed: User said no") != std::string::npos);
}

TEST_CASE("web sign-in under a mount prefix, with the original's GLOBUS_CLIENT_ID and _SECRET",
          "[users][oidc]") {
  WebSignIn web({{"OIDC_CLIENT_ID", nullptr},
                 {"OIDC_CLIENT_SECRET", nullptr},
                 {"GLOBUS_CLIENT_ID", "depot-test-client"},
                 {"GLOBUS_CLIENT_SECRET", "depot-test-secret"}},
                "/servicex");
  std::string callback = web.authorize();
  CHECK(callback.rfind("/servicex/auth-callback?code=", 0) == 0);
  HttpResponse answer = web.request("GET", callback);
  CHECK(answer.header("location") == "/servicex/profile/new");
  CHECK(answer.header("set-cookie").find("; Path=/servicex;") != std::string::npos);
  CHECK(web.request("GET", "/servicex/profile/new").body.find("action=\"/servicex/profile/new\"") !=
        std::string::npos);
}

TEST_CASE("web sign-in refuses a wrong client secret, and needs a provider", "[users][oidc]") {
  SECTION("the provider refuses the code exchange") {
    WebSignIn web(json{{"OIDC_CLIENT_SECRET", "wrong-secret"}});
    HttpResponse answer = web.request("GET", web.authorize());
    CHECK(answer.status == 400);
    CHECK(answer.body.find("the token endpoint refused the code (invalid_client)") !=
          std::string::npos);
  }
  SECTION("without a provider /sign-in says so") {
    WebSignIn web(json{{"OIDC_ISSUER", nullptr}});
    HttpResponse answer = web.request("GET", "/sign-in");
    CHECK(answer.status == 503);
    CHECK(answer.body.find("no identity provider configured") != std::string::npos);
  }
  SECTION("an issuer without a client id leaves the service unmounted") {
    CHECK_THROWS_WITH(WebSignIn(json{{"OIDC_CLIENT_ID", nullptr}}),
                      Catch::Matchers::Contains("OIDC_ISSUER is set but OIDC_CLIENT_ID is not"));
  }
}
