// kv writes inside tasks, committed by LMDB's writer thread (bindings/kv_lmdb.cpp): the task
// waits for its commit and sees its writes after it; db:update's fn runs against a snapshot and
// runs again when what it read changed, so concurrent read-modify-writes lose nothing; a worker
// writing in a loop keeps serving its other requests; an acknowledged write survives kill -9;
// a batch that fails fails alone; the map still grows; scripts' own coroutines still write.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/depot_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/kv_backends.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::RawConnection;
using nlohmann::json;

namespace {

// Runs `count` clients at once, each calling `client(index)`.
void run_clients(int count, const std::function<void(int)>& client) {
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) threads.emplace_back(client, i);
  for (auto& thread : threads) thread.join();
}

}  // namespace

TEST_CASE("kv in a task: a write is seen once it returned, and fn sees its own writes", "[kv]") {
  std::string backend = GENERATE(from_range(depot::testing::kv_backends()));
  INFO(backend);
  depot::testing::TestServer server(
      "app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("seen")
local batched = kv.open("seen_batched", { durable = false })
service:post("/rw", function()
  local out = {}
  for _, handle in ipairs({ db, batched }) do
    handle:put("k", "v1")
    out[#out + 1] = handle:get("k")
    out[#out + 1] = tostring(handle:delete("k"))
    out[#out + 1] = tostring(handle:exists("k"))
  end
  db:put("c", "gone soon")
  local inside = db:update(function(tx)
    tx:put("a", 1)
    tx:put("b", 2)
    tx:delete("c")
    local keys = {}
    for _, item in ipairs(tx:iter({})) do keys[#keys + 1] = item.key end
    local last = tx:iter({ reverse = true, limit = 1 })[1].key
    return table.concat(keys, ",") .. "|" .. last .. "|" .. tostring(tx:get("a"))
  end)
  out[#out + 1] = inside
  out[#out + 1] = tostring(db:get("b")) .. "," .. tostring(db:exists("c"))
  -- A database this process never opened, reached through tx:db: read, then written.
  for _ = 1, 2 do
    out[#out + 1] = tostring(db:update(function(tx)
      local fresh = tx:db("fresh")
      local n = fresh:get("n")
      fresh:put("n", (n or 0) + 1)
      return n
    end))
  end
  return out
end)
)LUA",
      [&](depot::Options& options) { options.config = depot::testing::kv_config(backend); });
  auto response = http_request(server.port(), "POST", "/rw");
  CHECK(response.body ==
        R"(["v1","true","false","v1","true","false","a,b|b|1","2,false","nil","1"])");
}

TEST_CASE(
    "kv on LMDB: concurrent db:update increments on two workers lose nothing, and conflicts "
    "run fn again",
    "[kv]") {
  depot::testing::TestServer server("app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("contended", { durable = false })
service:post("/bump/:times", function(req)
  local runs = 0
  for _ = 1, tonumber(req.params.times) do
    db:update(function(tx)
      runs = runs + 1
      tx:put("n", (tx:get("n") or 0) + 1)
    end)
  end
  return { runs = runs }
end)
service:get("/count", function() return { n = db:get("n") or 0 } end)
)LUA",
                                    [](depot::Options& options) { options.threads = 2; });
  constexpr int kClients = 8;
  constexpr int kTimes = 50;
  std::atomic<int> runs{0};
  std::atomic<int> failures{0};
  run_clients(kClients, [&](int) {
    auto response = http_request(server.port(), "POST", "/bump/" + std::to_string(kTimes));
    if (response.status != 200) {
      ++failures;
      return;
    }
    runs += json::parse(response.body)["runs"].get<int>();
  });
  CHECK(failures == 0);
  CHECK(http_request(server.port(), "GET", "/count").body ==
        R"({"n":)" + std::to_string(kClients * kTimes) + "}");
  // Every update committed exactly once; those whose read of n had changed ran again.
  CHECK(runs > kClients * kTimes);
}

TEST_CASE("kv on LMDB: a worker writing in a long loop serves its other requests meanwhile",
          "[kv]") {
  depot::testing::TestServer server(
      "app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("loop", { durable = false })
service:post("/loop/:times", function(req)
  local times = tonumber(req.params.times)
  for i = 1, times do db:update(function(tx) tx:put("progress", i) end) end
  return { done = times }
end)
service:get("/progress", function() return { progress = db:get("progress") or 0 } end)
)LUA",
      [](depot::Options& options) { options.threads = 1; });  // the loop's own worker
  constexpr int kTimes = 3000;
  RawConnection looping(server.port());
  looping.send("POST /loop/" + std::to_string(kTimes) +
               " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  // Each update waits for its commit, and the worker answers these in between: they see the
  // loop under way, never only its start (0) or its end (every update committed).
  int progress = 0;
  for (int i = 0; i < 1000 && progress == 0; ++i) {
    progress = json::parse(http_request(server.port(), "GET", "/progress").body)["progress"];
  }
  CHECK(progress > 0);
  CHECK(progress < kTimes);
  auto done = looping.read_response(std::chrono::seconds(60));
  REQUIRE(done);
  CHECK(done->body == R"({"done":)" + std::to_string(kTimes) + "}");
}

TEST_CASE("kv on LMDB: a batch that fails fails alone, the others of its commit land", "[kv]") {
  depot::testing::TestServer server("app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("alone", { durable = false })
service:post("/too-many-databases", function()
  -- More databases than the environment's 128: this batch's commit cannot open them all.
  local ok, err = pcall(db.update, db, function(tx)
    for i = 1, 200 do tx:db("many" .. i):put("k", i) end
  end)
  return { ok = ok, error = err, written = kv.open("many1"):get("k") ~= nil }
end)
service:post("/bump", function()
  db:update(function(tx) tx:put("n", (tx:get("n") or 0) + 1) end)
  return { ok = true }
end)
service:get("/count", function() return { n = db:get("n") or 0 } end)
)LUA",
                                    [](depot::Options& options) { options.threads = 2; });
  constexpr int kBumps = 40;
  std::string failed;
  std::atomic<int> bumped{0};
  run_clients(5, [&](int index) {
    if (index == 0) {
      failed = http_request(server.port(), "POST", "/too-many-databases").body;
      return;
    }
    for (int i = 0; i < kBumps / 4; ++i) {
      bumped += http_request(server.port(), "POST", "/bump").status == 200;
    }
  });
  json answer = json::parse(failed);
  CHECK(answer["ok"] == false);
  CHECK(answer["written"] == false);
  CHECK_THAT(answer["error"].get<std::string>(),
             Catch::StartsWith("kv.update: mdb_dbi_open: MDB_DBS_FULL"));
  CHECK(bumped == kBumps);
  CHECK(http_request(server.port(), "GET", "/count").body ==
        R"({"n":)" + std::to_string(kBumps) + "}");
}

TEST_CASE("kv on LMDB: the map grows under writes from tasks on two workers", "[kv]") {
  depot::testing::TestServer server("app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("big", { durable = false })
local value = string.rep("v", 100000)
service:post("/fill/:client", function(req)
  for i = 1, 50 do db:put(req.params.client .. ":" .. i, value) end
  return { ok = true }
end)
service:get("/count", function() return { n = db:count() } end)
)LUA",
                                    [](depot::Options& options) {
                                      options.threads = 2;
                                      options.config = json{{"kv", {{"map_size", 1 << 20}}}};
                                    });
  std::atomic<int> filled{0};
  run_clients(4, [&](int index) {
    filled += http_request(server.port(), "POST", "/fill/" + std::to_string(index)).status == 200;
  });
  CHECK(filled == 4);  // 20 MB into a 1 MiB map
  CHECK(http_request(server.port(), "GET", "/count").body == R"({"n":200})");
}

TEST_CASE("kv on LMDB: a coroutine the script made writes on its worker thread, as before",
          "[kv]") {
  depot::testing::TestServer server("app", R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("own")
service:post("/own", function()
  local run = coroutine.wrap(function()
    db:put("c", 1)
    db:update(function(tx) tx:put("c", tx:get("c") + 1) end)
    return db:get("c"), db:delete("c"), db:exists("c")
  end)
  return { run() }
end)
)LUA");
  CHECK(http_request(server.port(), "POST", "/own").body == "[2,true,false]");
}

TEST_CASE("kv on LMDB: every acknowledged durable write survives kill -9 of depot serve", "[kv]") {
  auto directory = depot::testing::make_temp_dir("depot-kv-kill-");
  std::filesystem::create_directories(directory / "scripts" / "app");
  std::ofstream(directory / "scripts" / "app" / "init.lua") << R"LUA(
local kv = require "kv"
local service = ...
local db = kv.open("orders")
service:post("/order/:id", function(req)
  db:update(function(tx) tx:put(req.params.id, "placed") end)
  return { ok = true }
end)
service:get("/orders", function()
  local ids = {}
  for _, item in ipairs(db:iter({})) do ids[#ids + 1] = item.key end
  return ids
end)
)LUA";
  std::ofstream(directory / "depot.json")
      << R"({"services": [{"name": "app", "mount": "/"}], "threads": 2, "watch_scripts": false})";
  const std::vector<std::string> arguments = {"--config", "depot.json", "--port",
                                              "0",        "--data-dir", "data"};
  std::mutex mutex;
  std::condition_variable progressed;
  std::set<std::string> acknowledged;
  {
    depot::testing::DepotProcess depot(directory, arguments);
    REQUIRE(depot.port != 0);
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        for (int i = 0; i < 200; ++i) {
          std::string id = std::to_string(c) + "-" + std::to_string(i);
          try {
            if (http_request(depot.port, "POST", "/order/" + id).status != 200) return;
          } catch (const std::runtime_error&) {
            return;  // killed while this one was under way: never acknowledged
          }
          std::lock_guard<std::mutex> lock(mutex);
          acknowledged.insert(id);
          progressed.notify_all();
        }
      });
    }
    {
      // Killed with writes still arriving from every client.
      std::unique_lock<std::mutex> lock(mutex);
      progressed.wait_for(lock, std::chrono::seconds(60),
                          [&] { return acknowledged.size() >= 100; });
      kill(depot.pid, SIGKILL);
    }
    for (auto& client : clients) client.join();
    CHECK(depot.wait_exit() == -1);
  }
  REQUIRE(acknowledged.size() >= 100);
  REQUIRE(acknowledged.size() < 800);  // the kill came before the end
  // Else the killed server's "listening" line may be read before the new process truncates it.
  std::filesystem::remove(directory / "depot.log");
  depot::testing::DepotProcess again(directory, arguments);
  REQUIRE(again.port != 0);
  json stored = json::parse(http_request(again.port, "GET", "/orders").body);
  std::set<std::string> found(stored.begin(), stored.end());
  for (const std::string& id : acknowledged) {
    INFO(id);
    CHECK(found.count(id) == 1);
  }
  std::filesystem::remove_all(directory);
}
