// The users service's listings and bulk deletes at a few thousand users: GET /users and GET
// /pending stream the bytes the whole list encoded at once would be, without any secret field,
// while the worker goes on serving; DELETE /users and DELETE /pending delete them all in batches.
#include <memory>

#include "tests/services/users/users_fixture.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::RawConnection;

namespace {

constexpr int kSeeded = 3000;

// A test service writing users straight into the users store's kv layout (store.lua), `count` in
// one batched transaction: thousands of registrations would take minutes. Every third is pending;
// each carries the secrets a record holds, which no listing may show.
const char* kSeed = R"(
local kv = require "kv"
local service = ...
local db = kv.open("users", { durable = false })
service:post("/users/:count", function(req)
  local count = tonumber(req.params.count)
  db:update(function(tx)
    local first = tx:get("next_id")
    for id = first, first + count - 1 do
      local email = string.format("%s%05d@example.org", string.rep("u", 200), id)
      local sub = "seeded-" .. id
      tx:put(string.format("user:%012d", id), { id = id, sub = sub, email = email, name = "Seeded",
        admin = false, pending = id % 3 == 0, password_hash = "$argon2id$secret-hash",
        refresh_jti = "secret-jti", refresh_token = "secret-token" })
      tx:put("email:" .. email, id)
      tx:put("sub:" .. sub, id)
    end
    tx:put("next_id", first + count)
  end)
end)
)";

std::string seeded_email(int id) {
  char number[8];
  std::snprintf(number, sizeof number, "%05d", id);
  return std::string(200, 'u') + number + "@example.org";
}

// One worker, so the listing and the request beside it share it; the admin is id 1.
std::unique_ptr<Users> seeded_users() {
  auto users = std::make_unique<Users>(json::object(), DEPOT_SOURCE_DIR "/scripts", 1);
  users->server().write_script("seed", kSeed);
  REQUIRE(users->server()
              .server()
              .add_service({"seed", users->server().scripts_dir() / "seed", {"/seed"}})
              .empty());
  // 500 per transaction: one of 3000 could outlast the CPU slice on a loaded machine.
  for (int seeded = 0; seeded < kSeeded; seeded += 500) {
    REQUIRE(http_request(users->port(), "POST", "/seed/users/500").status == 204);
  }
  return users;
}

}  // namespace

TEST_CASE("users: GET /users and /pending stream thousands of users, byte for byte", "[users]") {
  auto users = seeded_users();
  std::string admin = users->admin_header();
  json all = json::array({{{"email", kAdmin}, {"id", 1}, {"admin", true}, {"pending", false}}});
  json pending = json::array();
  for (int id = 2; id <= kSeeded + 1; ++id) {
    all.push_back(
        {{"email", seeded_email(id)}, {"id", id}, {"admin", false}, {"pending", id % 3 == 0}});
    if (id % 3 == 0) pending.push_back({{"email", seeded_email(id)}, {"id", id}, {"admin", false}});
  }

  // A client that asks for the listing and does not read it: the answer (~700 KB) waits on the
  // socket while the same worker answers others.
  RawConnection stalled(users->port());
  stalled.set_receive_buffer(65536);
  stalled.send("GET /users HTTP/1.1\r\nHost: 127.0.0.1\r\n" + admin + "\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 5; ++i) CHECK(users->get("/servicex").status == 200);
  auto streamed = stalled.read_response(std::chrono::seconds(60));
  REQUIRE(streamed);
  CHECK(streamed->status == 200);
  CHECK(streamed->header("transfer-encoding") == "chunked");
  CHECK(streamed->header("access-control-allow-origin") == "*");
  CHECK(streamed->header("content-type") == "application/json");
  // nlohmann's dump is compact with sorted keys, as json.encode of the whole list was.
  CHECK(streamed->body == json{{"users", all}}.dump());
  CHECK(streamed->body.find("secret") == std::string::npos);
  CHECK(streamed->body.find("sub") == std::string::npos);

  auto listed = users->get("/pending", admin);
  CHECK(listed.status == 200);
  CHECK(listed.body == json{{"users", pending}}.dump());
}

TEST_CASE("users: DELETE /pending and /users delete thousands of users in batches", "[users]") {
  auto users = seeded_users();
  std::string admin = users->admin_header();
  check_answer(users->remove("/pending", admin), 200,
               {{"message", std::to_string(kSeeded / 3) + " row(s) deleted"}});
  check_answer(users->get("/pending", admin), 200, {{"users", json::array()}});
  CHECK(body_of(users->get("/users", admin))["users"].size() == kSeeded - kSeeded / 3 + 1);
  // The deleted users' e-mails are free again: the indexes went with the records.
  check_answer(users->register_user(seeded_email(3)), 200,
               {{"message", "User " + seeded_email(3) + " added to pending user list"}});
  check_answer(users->remove("/users", admin), 200,
               {{"message", std::to_string(kSeeded - kSeeded / 3 + 1) + " row(s) deleted"}});
  check_answer(users->get("/users", admin), 200,
               {{"users", {{{"email", kAdmin}, {"id", 1}, {"admin", true}, {"pending", false}}}}});
  check_answer(users->login(seeded_email(2), "password"), 404,
               {{"message", "User " + seeded_email(2) + " doesn't exist"}});
}
