// What the users service tests share: a Depot serving the ServiceX user service (scripts/users)
// at "/" with auth on, a known secret and a bootstrapped admin; an HS256 implementation of the
// test's own (libsodium) to mint and check tokens independently of the service; small clients.
#pragma once

#include <sodium.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

namespace depot::testing::users {

using nlohmann::json;

inline const std::string kSecret = "test-secret-key";
inline const std::string kAdmin = "admin@example.com";
inline const std::string kAdminPassword = "admin-password";
inline const std::string kJson = "Content-Type: application/json";
inline const std::string kForm = "Content-Type: application/x-www-form-urlencoded";

inline std::string base64url(const std::string& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.find('\0'));
  return out;
}

inline std::string unbase64url(const std::string& text) {
  std::string out(text.size(), '\0');
  size_t length = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    throw std::runtime_error("not base64url: " + text);
  }
  out.resize(length);
  return out;
}

inline std::string hmac_sha256(const std::string& key, const std::string& data) {
  crypto_auth_hmacsha256_state state;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(data.data()),
                                data.size());
  crypto_auth_hmacsha256_final(&state, mac);
  return std::string(reinterpret_cast<char*>(mac), sizeof mac);
}

// A token as PyJWT writes one: base64url(header).base64url(claims).base64url(HMAC-SHA256).
inline std::string mint(const json& claims, const std::string& secret = kSecret,
                        const json& header = {{"typ", "JWT"}, {"alg", "HS256"}}) {
  std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
  return input + "." + base64url(hmac_sha256(secret, input));
}

// The claims of `token` after checking its HS256 signature under `secret` (throws if it fails).
inline json verify(const std::string& token, const std::string& secret = kSecret) {
  size_t first = token.find('.'), last = token.rfind('.');
  if (first == std::string::npos || first == last) throw std::runtime_error("not a JWT: " + token);
  std::string input = token.substr(0, last);
  if (base64url(hmac_sha256(secret, input)) != token.substr(last + 1))
    throw std::runtime_error("bad signature: " + token);
  json header = json::parse(unbase64url(token.substr(0, first)));
  if (header["alg"] != "HS256") throw std::runtime_error("not HS256: " + header.dump());
  return json::parse(unbase64url(token.substr(first + 1, last - first - 1)));
}

inline long long now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// flask-jwt-extended 3.x access-token claims for `identity`, valid from now for an hour.
inline json access_claims(const std::string& identity) {
  long long now = now_seconds();
  return {
      {"iat", now},        {"nbf", now},           {"jti", "0b3d2c4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"},
      {"exp", now + 3600}, {"identity", identity}, {"fresh", false},
      {"type", "access"}};
}

inline std::string bearer(const std::string& token) {
  return "Authorization: Bearer " + token;
}

// The users service's settings in the tests: auth on, kSecret, kAdmin with kAdminPassword and the
// cheapest argon2id. The failed-login limits are out of the way of admin_login_when_ready, the
// registration limit out of the way of tests that register many (the limits' own tests set theirs).
inline json test_settings() {
  return {{"ENABLE_AUTH", "true"},
          {"JWT_SECRET_KEY", kSecret},
          {"JWT_ADMIN", kAdmin},
          {"JWT_ADMIN_PASSWORD", kAdminPassword},
          {"PASSWORD_HASH_OPS", 1},
          {"PASSWORD_HASH_MEM", 8192},
          {"LOGIN_MAX_FAILURES", 10000},
          {"LOGIN_MAX_FAILURES_PER_ADDRESS", 10000},
          {"REGISTRATION_MAX_PER_ADDRESS", 10000}};
}

// The login answer of `email` (password kAdminPassword) at `login_path`, once the server's start
// hook has made that admin: on a loaded machine that may take seconds, so it tries for up to 30 s.
// Each try before counts as a failed login, which is why test_settings() raises the limits: at the
// default 5 the account would be locked after a quarter of a second of waiting. Throws "the admin
// never could log in".
inline json admin_login_when_ready(uint16_t port, const std::string& login_path = "/login",
                                   const std::string& email = kAdmin) {
  std::string credentials = json{{"email", email}, {"password", kAdminPassword}}.dump();
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    auto response = http_request(port, "POST", login_path, credentials, kJson);
    if (response.status == 200) return json::parse(response.body);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < give_up);
  throw std::runtime_error("the admin never could log in");
}

// `settings` with a test's `config` over them: null removes a setting, and "{sink}" in a string
// stands for `sink_url` (a stub on the same server, whose port a test cannot know beforehand).
inline json with_config(json settings, const json& config, const std::string& sink_url) {
  for (const auto& [key, value] : config.items()) {
    if (value.is_null()) {
      settings.erase(key);
    } else if (value.is_string()) {
      std::string text = value;
      auto at = text.find("{sink}");
      if (at != std::string::npos) text.replace(at, 6, sink_url);
      settings[key] = text;
    } else {
      settings[key] = value;
    }
  }
  return settings;
}

class Users {
 public:
  // `config`: settings merged over auth on, kSecret, kAdmin with kAdminPassword and the cheapest
  // argon2id. Returns once the admin (id 1), if any, exists.
  // `scripts_dir`: another copy of the scripts (to edit them on the running server).
  // `threads`: its workers (1 to have every request on the same one).
  explicit Users(json config = json::object(),
                 std::filesystem::path scripts_dir = DEPOT_SOURCE_DIR "/scripts", int threads = 2) {
    server_ =
        std::make_unique<TestServer>(std::vector<TestServer::Service>{}, [&](Options& options) {
          options.threads = threads;
          options.scripts_dir = scripts_dir;
        });
    json settings = test_settings();
    settings.update(config);
    std::string error = server_->server().add_service({"users", "users", {"/"}, settings});
    if (!error.empty()) throw std::runtime_error("users did not load: " + error);
    // Once the start hook has made the admin, ids are deterministic (each try before counts as
    // a failed login from this address: tests of the address limit configure no admin).
    if (settings["JWT_ADMIN"] != "") admin_login();
  }

  uint16_t port() const { return server_->port(); }
  TestServer& server() { return *server_; }

  HttpResponse post(const std::string& path, const json& body, const std::string& headers = "") {
    return http_request(port(), "POST", path, body.dump(),
                        kJson + (headers.empty() ? "" : "\r\n" + headers));
  }
  HttpResponse get(const std::string& path, const std::string& headers = "") {
    return http_request(port(), "GET", path, "", headers);
  }
  HttpResponse remove(const std::string& path, const std::string& headers = "") {
    return http_request(port(), "DELETE", path, "", headers);
  }

  HttpResponse login(const std::string& email, const std::string& password) {
    return post("/login", {{"email", email}, {"password", password}});
  }

  // The admin's login answer; waits for the start hook that creates the admin.
  json admin_login() { return admin_login_when_ready(port()); }
  std::string admin_header() { return bearer(admin_login()["access_token"]); }

  HttpResponse register_user(const std::string& email, const std::string& password = "password") {
    return post("/registration", {{"full_name", "Test User"},
                                  {"email", email},
                                  {"password", password},
                                  {"confirm_password", password}});
  }

  // Registers and approves `email`; returns its login answer.
  json approved_user(const std::string& email, const std::string& password = "password") {
    REQUIRE(register_user(email, password).status == 200);
    REQUIRE(post("/accept", {{"email", email}}, admin_header()).status == 200);
    auto response = login(email, password);
    REQUIRE(response.status == 200);
    return json::parse(response.body);
  }

 private:
  std::unique_ptr<TestServer> server_;
};

inline json body_of(const HttpResponse& response) {
  return json::parse(response.body, nullptr, false);
}

// Checks an answer's status and its whole JSON body.
inline void check_answer(const HttpResponse& response, int status, const json& body) {
  INFO(response.body);
  CHECK(response.status == status);
  CHECK(body_of(response) == body);
}

}  // namespace depot::testing::users
