// kv from Lua on every backend (LMDB, and PostgreSQL where it is installed: kv_backends.hpp) —
// values, iteration, atomic updates that cannot span a yield or nest, durable and batched writes,
// sharing between states; and LMDB's own: map growth (in this process, and by another process on
// the same files), a server stopped while its durable writes wait for the disk.
#include <catch2/catch.hpp>
#include <fstream>
#include <future>

#include "bindings/lmdb_env.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/kv_backends.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::LuaFixture;

TEST_CASE("kv stores strings and tables and reads them back", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  LuaFixture lua(depot::testing::kv_config(backend));
  CHECK(lua.run(R"LUA(
    local kv = require "kv"
    local json = require "json"
    local db = kv.open("things")
    assert(db:get("missing") == nil)
    db:put("a", "plain \0 bytes")
    assert(db:get("a") == "plain \0 bytes")
    db:put("t", { name = "x", list = { 1, 2, 3 }, empty = {}, nothing = json.null })
    local t = db:get("t")
    assert(t.name == "x" and t.list[3] == 3 and next(t.empty) == nil and t.nothing == json.null)
    db:put("n", 42)
    assert(db:get("n") == 42)
    assert(db:exists("n") and not db:exists("zz"))
    assert(db:delete("n") == true and db:delete("n") == false)
    assert(db:count() == 2)
    local ok, err = pcall(db.put, db, "k", function() end)
    assert(not ok and err:find("kv.put: value must be"), err)
    ok, err = pcall(db.put, db, string.rep("k", 600), "v")
    assert(not ok and err:find("key must be 1..511 bytes"), err)
  )LUA") == "");
}

TEST_CASE("kv iterates by prefix and range, forwards and backwards, with limits", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  LuaFixture lua(depot::testing::kv_config(backend));
  CHECK(lua.run(R"LUA(
    local db = require("kv").open("ordered")
    for _, k in ipairs({ "a1", "a2", "a3", "b1", "b2", "c" }) do db:put(k, k:upper()) end
    local function keys(list) local out = {} for i, p in ipairs(list) do out[i] = p.key end return table.concat(out, ",") end
    assert(keys(db:iter({ prefix = "a" })) == "a1,a2,a3")
    assert(db:iter({ prefix = "a" })[2].value == "A2")
    assert(keys(db:iter({ prefix = "a", reverse = true })) == "a3,a2,a1")
    assert(keys(db:iter({ from = "a2", to = "b2" })) == "a2,a3,b1")
    assert(keys(db:iter({ from = "a2", to = "b2", reverse = true })) == "b1,a3,a2")
    assert(keys(db:iter({ limit = 2 })) == "a1,a2")
    assert(keys(db:iter({ reverse = true, limit = 2 })) == "c,b2")
    assert(db:count("b") == 2)
    -- Bounds are bytes, NULs included: key .. "\0" is the first key after key (paging).
    assert(keys(db:iter({ prefix = "a", from = "a1\0", limit = 1 })) == "a2")
    db:put("n\0x", 1)
    db:put("n\0y", 2)
    assert(db:count("n\0") == 2 and keys(db:iter({ to = "a1\0" })) == "a1")
  )LUA") == "");
}

TEST_CASE("kv update commits atomically, aborts on error, and refuses to yield", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  LuaFixture lua(depot::testing::kv_config(backend));
  CHECK(lua.run(R"LUA(
    local kv = require "kv"
    local db = kv.open("counters")
    local result = db:update(function(tx)
      tx:put("n", (tx:get("n") or 0) + 1)
      tx:db("audit"):put("last", "n")
      return "done", 7
    end)
    assert(result == "done")
    assert(db:get("n") == 1 and kv.open("audit"):get("last") == "n")

    local ok, err = pcall(db.update, db, function(tx) tx:put("n", 100); error("changed my mind") end)
    assert(not ok and err:find("changed my mind"))
    assert(db:get("n") == 1, "aborted write must not land")

    local leaked
    local co = coroutine.create(function()
      return db:update(function(tx) leaked = tx; tx:put("n", 200); coroutine.yield() end)
    end)
    local resumed, message = coroutine.resume(co)
    assert(not resumed and message:find("yield across"), tostring(message))
    assert(db:get("n") == 1, "a yield inside update aborts it")
    local used, closed = pcall(leaked.get, leaked, "n")
    assert(not used and closed:find("transaction is closed"))
  )LUA") == "");
}

TEST_CASE("two Lua states on one data dir share the store, batched writes persist after sync",
          "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  nlohmann::json config = depot::testing::kv_config(backend);
  LuaFixture first(config);
  lua_State* second = luaL_newstate();
  luaL_openlibs(second);
  depot::BindingContext context;
  context.data_dir = first.data_dir();
  context.config = config;
  depot::set_binding_context(second, &context);
  depot::open_bindings(second);
  CHECK(
      first.run(
          R"(local db = require("kv").open("shared", { durable = false }); db:put("k", "from first"); require("kv").sync())") ==
      "");
  REQUIRE(luaL_dostring(second, R"(return require("kv").open("shared"):get("k"))") == 0);
  CHECK(std::string(lua_tostring(second, -1)) == "from first");
  lua_close(second);
}

TEST_CASE("the map grows by itself when full", "[kv]") {
  LuaFixture lua(nlohmann::json{{"kv", {{"map_size", 1 << 20}}}});
  CHECK(lua.run(R"LUA(
    local db = require("kv").open("big", { durable = false })
    local value = string.rep("v", 100000)
    for i = 1, 200 do db:put("key" .. i, value) end   -- 20 MB into a 1 MiB map
    assert(#db:get("key200") == 100000)
  )LUA") == "");
}

TEST_CASE("a map another process grew is adopted (MDB_MAP_RESIZED), its writes seen", "[kv]") {
  nlohmann::json config{{"kv", {{"map_size", 1 << 20}}}};
  LuaFixture lua(config);
  CHECK(lua.run(R"(require("kv").open("big"):put("mine", "before"))") == "");
  // Another process on the same files: `depot admin` writes 20 MB, growing the 1 MiB map.
  auto work = depot::testing::make_temp_dir("depot-kv-resized-");
  std::filesystem::create_directories(work / "scripts/filler");
  std::ofstream(work / "scripts/filler/init.lua") << R"LUA(
local service = ...
service:command("fill", function()
  local db = require("kv").open("big", { durable = false })
  local value = string.rep("v", 100000)
  for i = 1, 200 do db:put("key" .. i, value) end
  require("kv").sync()
end)
)LUA";
  config["services"] = {{{"name", "filler"}, {"mount", "/"}}};
  std::ofstream(work / "config.json") << config.dump();
  depot::testing::ChildProcess filler(
      {DEPOT_BINARY, "admin", "--config", (work / "config.json").string(), "--scripts",
       (work / "scripts").string(), "--data-dir", lua.data_dir().string(), "fill"},
      work / "filler.log");
  int status = filler.wait_exit();
  INFO(filler.output());
  REQUIRE(status == 0);
  CHECK(lua.run(R"LUA(
    local db = require("kv").open("big")
    assert(db:get("mine") == "before")
    assert(#db:get("key200") == 100000, "the other process's write")
    db:put("after", "written")
    assert(db:count() == 202)
  )LUA") == "");
  std::filesystem::remove_all(work);
}

TEST_CASE("durable writes from request handlers wait for the disk without blocking the worker",
          "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  nlohmann::json config = depot::testing::kv_config(backend);
  depot::testing::TestServer server("app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("visits")
service:post("/visit/:name", function(req)
  local count = db:update(function(tx)
    local n = (tx:get(req.params.name) or 0) + 1
    tx:put(req.params.name, n)
    return n
  end)
  return { count = count }
end)
service:get("/visit/:name", function(req) return { count = db:get(req.params.name) or 0 } end)
)LUA",
                                    [&](depot::Options& options) { options.config = config; });
  for (int i = 1; i <= 5; ++i) {
    auto response = depot::testing::http_request(server.port(), "POST", "/visit/ada");
    CHECK(response.body == "{\"count\":" + std::to_string(i) + "}");
  }
  CHECK(depot::testing::http_request(server.port(), "GET", "/visit/ada").body == R"({"count":5})");
}

TEST_CASE("a server stopped while durable writes wait for the disk goes away cleanly", "[kv]") {
  using namespace std::chrono_literals;
  std::shared_ptr<depot::LmdbEnv> env;
  std::promise<void> release;
  {
    depot::testing::TestServer server(
        "app", R"LUA(
local db = require("kv").open("orders")
local service = ...
service:post("/order/:id", function(req) db:put(req.params.id, "placed"); return { ok = true } end)
)LUA",
        [](depot::Options& options) { options.drain_timeout = 200ms; });
    // The syncer thread is process-wide and outlives the server. Held inside a sync of this
    // test's own, it completes the server's durable write only after the server is gone.
    env = depot::LmdbEnv::open(server.data_dir() / "kv", 1 << 20);
    std::promise<void> holding;
    auto held = holding.get_future();
    env->sync_async([&holding, released = release.get_future().share()](const std::string&) {
      holding.set_value();
      released.wait();
    });
    held.wait();
    depot::testing::RawConnection connection(server.port());
    connection.send("POST /order/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    MDB_dbi orders = env->database("orders");
    bool committed = false;
    for (int i = 0; i < 500 && !committed; ++i) {
      env->read([&](MDB_txn* txn) {
        MDB_val key{1, const_cast<char*>("7")}, value;
        committed = mdb_get(txn, orders, &key, &value) == MDB_SUCCESS;
      });
      if (!committed) std::this_thread::sleep_for(10ms);
    }
    REQUIRE(committed);
    CHECK(connection.read_some(100ms).empty());  // the handler waits for its fsync
  }  // the drain deadline passes, and the worker goes with the task still waiting
  release.set_value();
  // Queued after the server's wait: once this one is done, that completion has run (and found
  // its worker gone; under ASan a use of the freed worker aborts here).
  std::promise<void> synced;
  auto done = synced.get_future();
  env->sync_async([&synced](const std::string&) { synced.set_value(); });
  CHECK(done.wait_for(10s) == std::future_status::ready);
}
