// depot admin users pending | approve | create-admin against the data dir of a running server
// (ServiceX#636): what the commands change is what the server then serves.
#include <cstdio>
#include <fstream>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;

namespace {

struct Outcome {
  int status;
  std::string output;
};

// Runs `depot admin users <arguments>` on the server's data dir from that dir (so no ./.env of
// the caller's applies), with `input` on stdin.
Outcome admin_users(Users& users, const std::string& arguments, const std::string& input = "") {
  auto data_dir = users.server().data_dir();
  std::ofstream(data_dir / "admin.json") << json({{"services",
                                                   {{{"name", "users"},
                                                     {"mount", "/"},
                                                     {"config",
                                                      {{"ENABLE_AUTH", "true"},
                                                       {"JWT_SECRET_KEY", kSecret},
                                                       {"PASSWORD_HASH_OPS", 1},
                                                       {"PASSWORD_HASH_MEM", 8192}}}}}}})
                                                .dump();
  std::ofstream(data_dir / "stdin.txt") << input;
  std::string command =
      "cd '" + data_dir.string() + "' && '" DEPOT_BINARY "' admin --config admin.json --scripts '" +
      DEPOT_SOURCE_DIR "/scripts' --data-dir . users " + arguments + " <stdin.txt 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed");
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace

TEST_CASE("users cli: pending, approve and create-admin next to a running server", "[users]") {
  Users users;
  REQUIRE(users.register_user("bob@example.org", "secret").status == 200);
  Outcome pending = admin_users(users, "pending");
  CHECK(pending.status == 0);
  CHECK(pending.output == "2\tbob@example.org\tTest User\n");

  Outcome approve = admin_users(users, "approve bob@example.org");
  CHECK(approve.status == 0);
  CHECK(approve.output == "user bob@example.org now ready for access\n");
  CHECK(users.login("bob@example.org", "secret").status == 200);
  CHECK(admin_users(users, "pending").output.empty());
  CHECK(admin_users(users, "approve nobody@example.org").status != 0);

  Outcome created = admin_users(users, "create-admin root@example.org", "root-password\n");
  CHECK(created.status == 0);
  CHECK(created.output == "user root@example.org (id 3) is an admin\n");
  auto login = users.login("root@example.org", "root-password");
  REQUIRE(login.status == 200);
  CHECK(users.get("/users", bearer(body_of(login)["access_token"])).status == 200);
  CHECK(admin_users(users, "create-admin empty@example.org", "").status != 0);
  CHECK(admin_users(users, "frobnicate").status != 0);
}

TEST_CASE("users cli: create-admin never promotes an account that holds the e-mail", "[users]") {
  Users users;
  // Bob typed the address at /registration (pending) and Cy got approved: neither is an admin,
  // and neither becomes one, whatever the operator asks.
  REQUIRE(users.register_user("bob@example.org", "bob-password").status == 200);
  json cy = users.approved_user("cy@example.org", "cy-password");
  for (const std::string email : {"bob@example.org", "cy@example.org"}) {
    Outcome refused = admin_users(users, "create-admin " + email, "operator-password\n");
    CHECK(refused.status != 0);
    CHECK(refused.output.empty());
    CHECK(users.login(email, "operator-password").status == 401);
  }
  check_answer(
      users.login("bob@example.org", "bob-password"), 401,
      {{"message",
        "User bob@example.org is still pending. Contact administrator to approve request"}});
  CHECK(users.get("/users", bearer(cy["access_token"])).status == 401);
  // The admin's own account is an admin already: its password is replaced.
  Outcome again = admin_users(users, "create-admin " + kAdmin, "new-admin-password\n");
  CHECK(again.status == 0);
  CHECK(again.output == "user " + kAdmin + " (id 1) is an admin\n");
  CHECK(users.login(kAdmin, "new-admin-password").status == 200);
}
