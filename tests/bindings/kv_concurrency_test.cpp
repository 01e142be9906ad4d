// kv under concurrency on every backend: db:update increments from many tasks of two servers in
// two processes add up exactly; a nested db:update raises instead of hanging. On PostgreSQL: a
// commit that conflicts runs fn again, and a dropped connection gives a clear error once and is
// opened again.
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/kv_backends.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/replica.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::LuaFixture;
using nlohmann::json;

namespace {

const char* const kCounterScript = R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("counters")
service:post("/bump/:times", function(req)
  for _ = 1, tonumber(req.params.times) do
    db:update(function(tx) tx:put("n", (tx:get("n") or 0) + 1) end)
  end
  return { ok = true }
end)
service:get("/count", function() return { n = db:get("n") or 0 } end)
)LUA";

}  // namespace

TEST_CASE("kv update increments from many tasks in two processes add up exactly", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  json config = depot::testing::kv_config(backend);
  depot::testing::TestServer first("app", kCounterScript, [&](depot::Options& options) {
    options.config = config;
    options.threads = 2;
  });
  depot::testing::Replica second(config, first.data_dir(), kCounterScript);
  REQUIRE(second.port() != 0);

  constexpr int kClients = 6;   // per server
  constexpr int kTimes = 10;    // updates per request
  constexpr int kRequests = 2;  // per client
  std::vector<std::thread> clients;
  std::mutex mutex;
  std::vector<std::string> failures;
  for (uint16_t port : {first.port(), second.port()}) {
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([port, &mutex, &failures] {
        for (int r = 0; r < kRequests; ++r) {
          auto response = http_request(port, "POST", "/bump/" + std::to_string(kTimes));
          std::lock_guard<std::mutex> lock(mutex);
          if (response.status != 200) failures.push_back(response.body);
        }
      });
    }
  }
  for (auto& client : clients) client.join();
  INFO(second.log());
  CHECK(failures == std::vector<std::string>{});
  std::string expected = R"({"n":)" + std::to_string(2 * kClients * kRequests * kTimes) + "}";
  CHECK(http_request(first.port(), "GET", "/count").body == expected);
  CHECK(http_request(second.port(), "GET", "/count").body == expected);
}

TEST_CASE("kv: a db:update or a db write inside db:update's function raises, never hangs", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  LuaFixture lua(depot::testing::kv_config(backend));
  CHECK(lua.run(R"LUA(
    local db = require("kv").open("nested")
    local ok, err = pcall(db.update, db, function(tx) return db:update(function() end) end)
    assert(not ok and err:find("kv.update: nested db:update", 1, true), err)
    ok, err = pcall(db.update, db, function(tx) db:put("a", 1) end)
    assert(not ok and err:find("kv.put: not allowed inside db:update's function", 1, true), err)
    ok, err = pcall(db.update, db, function(tx) db:delete("a") end)
    assert(not ok and err:find("kv.delete: not allowed", 1, true), err)
    assert(db:get("a") == nil)
    -- The thread is not left inside an update: the next ones work.
    db:update(function(tx) tx:put("a", 2) end)
    assert(db:get("a") == 2)
    db:put("b", 3)
  )LUA") == "");
  // The same inside a request task, on the worker thread.
  depot::testing::TestServer server(
      "app", R"LUA(
local db = require("kv").open("nested")
local service = ...
service:get("/nested", function()
  local ok, err = pcall(db.update, db, function(tx) db:update(function() end) end)
  return { ok = ok, error = err }
end)
)LUA",
      [&](depot::Options& options) { options.config = depot::testing::kv_config(backend); });
  auto response = http_request(server.port(), "GET", "/nested");
  CHECK_THAT(response.body, Catch::Contains("\"ok\":false") && Catch::Contains("nested db:update"));
}

TEST_CASE("kv on PostgreSQL: a commit that conflicts runs fn again on fresh data",
          "[kv][postgres]") {
  if (!depot::testing::PostgresServer::available()) return;
  json config = depot::testing::kv_config("postgres");
  std::string url = depot::testing::kv_url_of(config);
  LuaFixture lua(config);
  // Another client's commit between fn's reads and its commit (serializable: a conflict).
  static std::string meddle_url;
  meddle_url = url;
  lua_pushcfunction(lua.state(), [](lua_State*) {
    depot::testing::postgres_execute(
        meddle_url,
        "UPDATE depot_kv SET value = 'j10'::bytea WHERE db = 'conflict' AND key = 'n'::bytea");
    return 0;
  });
  lua_setglobal(lua.state(), "meddle");
  CHECK(lua.run(R"LUA(
    local db = require("kv").open("conflict")
    db:put("n", 1)
    local runs, meddled = 0, false
    local seen = db:update(function(tx)
      runs = runs + 1
      local n = tx:get("n")
      if not meddled then meddled = true; meddle() end
      tx:put("n", n + 1)
      return n
    end)
    assert(seen == 10, "fn's result is that of the run that committed: " .. tostring(seen))
    assert(db:get("n") == 11, "the meddling write is kept, and ours on top: " .. tostring(db:get("n")))
    assert(runs >= 3, "fn ran again after the conflict: " .. runs)
  )LUA") == "");
}

TEST_CASE("kv on PostgreSQL: a dropped connection fails one call clearly and is opened again",
          "[kv][postgres]") {
  if (!depot::testing::PostgresServer::available()) return;
  json config = depot::testing::kv_config("postgres");
  std::string url = depot::testing::kv_url_of(config);
  depot::testing::TestServer server("app", R"LUA(
local db = require("kv").open("dropped")
local service = ...
service:post("/put", function() db:put("k", "v"); return { ok = true } end)
service:get("/get", function()
  local ok, value = pcall(db.get, db, "k")
  return { ok = ok, value = value }
end)
)LUA",
                                    [&](depot::Options& options) { options.config = config; });
  REQUIRE(http_request(server.port(), "POST", "/put").status == 200);
  REQUIRE(http_request(server.port(), "GET", "/get").body == R"({"ok":true,"value":"v"})");
  depot::testing::postgres_execute(
      url,
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  // The one pooled connection is gone: the next call fails with a clear error (or, when the
  // worker saw the drop first, connects again at once); after that, calls work.
  int failures = 0;
  for (int i = 0; i < 3; ++i) {
    std::string body = http_request(server.port(), "GET", "/get").body;
    if (body == R"({"ok":true,"value":"v"})") continue;
    ++failures;
    CHECK_THAT(body, Catch::Contains("\"ok\":false") && Catch::Contains("kv.get: postgres: ") &&
                         Catch::Contains("connection"));
  }
  CHECK(failures <= 1);
  CHECK(http_request(server.port(), "GET", "/get").body == R"({"ok":true,"value":"v"})");
}
