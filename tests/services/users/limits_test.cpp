// The users service's limits on what a client can make it do: parallel password guesses cannot
// pass the failed-login limit together, password hashes of registrations are limited per
// address, and over-long e-mails are answered in each route's own shape, never 500.
#include <memory>
#include <vector>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;

TEST_CASE("users: concurrent wrong logins of one e-mail pass the limit at most its number",
          "[users]") {
  // A password check slow enough (argon2id, 3 passes over 8 MiB) that every guess is in flight
  // while the others arrive: counted after the check, all twenty would pass.
  Users users(json{{"JWT_ADMIN", ""},
                   {"ENABLE_AUTH", "false"},
                   {"PASSWORD_HASH_OPS", 3},
                   {"PASSWORD_HASH_MEM", 8388608},
                   {"LOGIN_MAX_FAILURES", 5}});
  REQUIRE(users.register_user("ann@example.org", "secret").status == 200);
  REQUIRE(users.post("/accept", {{"email", "ann@example.org"}}).status == 200);
  // Twenty connections, then the twenty guesses written one right after the other.
  constexpr int kGuesses = 20;
  std::vector<std::unique_ptr<depot::testing::RawConnection>> connections;
  for (int i = 0; i < kGuesses; ++i) {
    connections.push_back(std::make_unique<depot::testing::RawConnection>(users.port()));
  }
  for (int i = 0; i < kGuesses; ++i) {
    std::string body =
        json{{"email", "ann@example.org"}, {"password", "guess-" + std::to_string(i)}}.dump();
    connections[i]->send("POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n" + kJson +
                         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  std::vector<int> statuses;
  for (auto& connection : connections) {
    auto response = connection->read_response(std::chrono::seconds(60));
    REQUIRE(response);
    statuses.push_back(response->status);
  }
  int checked = 0;
  for (int status : statuses) {
    if (status == 429) continue;
    CHECK(status == 401);
    ++checked;
  }
  CHECK(checked >= 1);
  CHECK(checked <= 5);
  // The account stays locked for the window, even with the right password.
  CHECK(users.login("ann@example.org", "secret").status == 429);
}

TEST_CASE("users: registrations that hash a password are limited per client address", "[users]") {
  Users users(json{{"JWT_ADMIN", ""}, {"REGISTRATION_MAX_PER_ADDRESS", 3}});
  for (const std::string email : {"a@example.org", "b@example.org", "c@example.org"}) {
    REQUIRE(users.register_user(email).status == 200);
  }
  auto refused = users.register_user("d@example.org");
  CHECK(refused.status == 429);
  CHECK(body_of(refused)["message"].get<std::string>().rfind(
            "Too many registrations from this address. Try again in ", 0) == 0);
  CHECK(std::stoi(refused.header("retry-after")) > 0);
  // What is answered without a hash still is.
  check_answer(users.register_user("a@example.org"), 200,
               {{"message", "User a@example.org already exists"}});
}

TEST_CASE("users: over-long e-mails get each route's answer, never 500", "[users]") {
  Users users;
  std::string admin = users.admin_header();
  // 600 bytes is over what a kv key may be; 400 fits one but is over the 320 an e-mail may have.
  for (size_t length : {600, 400}) {
    std::string email = std::string(length - 12, 'a') + "@example.org";
    INFO(length);
    check_answer(users.register_user(email), 400,
                 {{"message", {{"email", "Field cannot be longer than 320 characters."}}}});
    check_answer(users.login(email, "password"), 404,
                 {{"message", "User " + email + " doesn't exist"}});
    check_answer(users.post("/accept", {{"email", email}}, admin), 404,
                 {{"message", "No user registered with email: " + email}});
  }
  std::string longest = std::string(320 - 12, 'a') + "@example.org";
  check_answer(users.register_user(longest, "pw"), 200,
               {{"message", "User " + longest + " added to pending user list"}});
  check_answer(users.post("/accept", {{"email", longest}}, admin), 200,
               {{"message", "user " + longest + " now ready for access"}});
  CHECK(users.login(longest, "pw").status == 200);
}
