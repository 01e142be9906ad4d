// The image cache service end to end over HTTP, with the Kentik API stubbed by a Lua script that
// the same Depot serves (tests/stubs/kentik_api): ids, validation shapes, background fetches and
// their error mapping, retries, deduplication, waiting readers, expiry, restart recovery.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/s3_server.hpp"
#include "tests/support/stub_server.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::HttpResponse;
using depot::testing::TestServer;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {
const std::string kJson = "Content-Type: application/json";

struct ImageCache {
  std::unique_ptr<TestServer> server;

  explicit ImageCache(json extra = json::object(), std::filesystem::path data_dir = {}) {
    server = depot::testing::serve_stubs({{"kentik_api", "/kentik"}}, [&](depot::Options& options) {
      if (!data_dir.empty()) options.data_dir = data_dir;
      if (depot::testing::S3Server* s3 = depot::testing::s3_for_services())
        options.config["storage"] = s3->storage();
    });
    json config = {{"KT_AUTH_EMAIL", "test@example.com"},
                   {"KT_AUTH_TOKEN", "secret-token"},
                   {"KENTIK_API_URL", depot::testing::url_on(*server, "/kentik")},
                   {"KENTIK_API_RETRIES", 2},
                   {"KENTIK_API_TIMEOUT", 1},
                   {"KENTIK_API_BACKOFF", 0.05},
                   {"ENTRY_WAIT_TIMEOUT", 5}};
    // On S3 every image is an object (none inline in kv), so that the suite runs through blob.
    if (depot::testing::s3_for_services()) config["INLINE_IMAGE_BYTES"] = 0;
    config.update(extra);
    depot::testing::add_service(*server, {"image_cache", "image_cache", {"/"}, config});
  }
  uint16_t port() const { return server->port(); }
};

std::string request_id(uint16_t port, const json& body) {
  auto response = http_request(port, "POST", "/requests", body.dump(), kJson);
  REQUIRE(response.status == 200);
  return json::parse(response.body)["id"];
}

json query(const std::string& image_type, json stub = json::object()) {
  json q = {{"queries",
             {{{"bucket", "Left +Y Axis"},
               {"isOverlay", false},
               {"query", {{"metric", "bytes"}, {"topx", 8}, {"starting_time", nullptr}}}}}},
            {"imageType", image_type}};
  if (!stub.empty()) q["stub"] = stub;
  return q;
}

int upstream_calls(uint16_t port, const std::string& name) {
  return json::parse(http_request(port, "GET", "/kentik/calls/" + name).body)["calls"];
}
}  // namespace

TEST_CASE("image cache: ids hash Python's str() of the query", "[image_cache]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(std::string("package.path = '") + DEPOT_SOURCE_DIR +
                "/scripts/?.lua;' .. package.path\n" + R"LUA(
    local ids = require "image_cache.ids"
    local crypto = require "crypto"
    local json = require "json"
    local body = '{"api_query": {"queries": [{"bucket": "Left +Y Axis", "isOverlay": false, "query": {"topx": 8, "starting_time": null, "x": 1.0}}], "imageType": "png"}, "ttl": 60}'
    local text = json.member_text(body, "api_query")
    assert(json.python_repr(text) == "{'queries': [{'bucket': 'Left +Y Axis', 'isOverlay': False, 'query': {'topx': 8, 'starting_time': None, 'x': 1.0}}], 'imageType': 'png'}")
    local id = ids.make(text, 1620973821.2844)
    assert(id == "2c1465251a2a9a7543a5d9ae7c1d95f07d0ec4975039f81b481c5b3c62cfda6b_1620973821.2844", id)
    assert(ids.make('{"a": 1}', 1622181773.873009) == "240f5ff9499fabe7952369a2a095ad1d8dedba650ea844f3fa0027e5ddc12f49_1622181773.873009")
    assert(ids.expiry_text(1620973821) == "1620973821.0")
    assert(json.member_text('{"api_query": 1, "api_query": {"b": [1, "}"]}}', "api_query") == '{"b": [1, "}"]}')
    assert(ids.expiry("abc_1620973821.5") == 1620973821.5 and ids.expiry("abc") == nil)
  )LUA") == "");
}

TEST_CASE("image cache: /info expirations are Python's isoformat() and str(timedelta)",
          "[image_cache]") {
  depot::testing::LuaFixture lua;
  // {expiry, now, what Python 3 prints for datetime.fromtimestamp(expiry, timezone.utc)
  // .isoformat() and timedelta(seconds=expiry - now)}, the same doubles on both sides.
  CHECK(lua.run(std::string("package.path = '") + DEPOT_SOURCE_DIR +
                "/scripts/?.lua;' .. package.path\n" + R"LUA(
    local info = require "image_cache.info"
    for _, case in ipairs({
      {1620973821.2844, 1620973500.0, "2021-05-14T06:30:21.284400+00:00 (remaining: 0:05:21.284400)"},
      -- micros rounding to 1,000,000 carry into the next second, for the time and the remaining
      {1620973821.9999995, 1620973821.5, "2021-05-14T06:30:22+00:00 (remaining: 0:00:00.500000)"},
      {1620973881.9999998, 1620973822.0, "2021-05-14T06:31:22+00:00 (remaining: 0:01:00)"},
      -- ... and across midnight, into the next day
      {1620950399.9999998, 1620864000.25, "2021-05-14T00:00:00+00:00 (remaining: 23:59:59.750000)"},
      {1620973821.0, 1620973821.0, "2021-05-14T06:30:21+00:00 (remaining: 0:00:00)"},
      {1577836799.5, 1577836799.0, "2019-12-31T23:59:59.500000+00:00 (remaining: 0:00:00.500000)"},
      -- expired: negative remaining time, "-1 day", big day counts either way
      {1620973821.2844, 1620974142.5688, "2021-05-14T06:30:21.284400+00:00 (remaining: -1 day, 23:54:38.715600)"},
      {1620973821.0, 1621060221.0, "2021-05-14T06:30:21+00:00 (remaining: -1 day, 0:00:00)"},
      {1620973821.5, 1707373822.25, "2021-05-14T06:30:21.500000+00:00 (remaining: -1001 days, 23:59:59.250000)"},
      {1620973821.0, 1534573819.75, "2021-05-14T06:30:21+00:00 (remaining: 1000 days, 0:00:01.250000)"},
      {1620950400.0, 1620864000.0, "2021-05-14T00:00:00+00:00 (remaining: 1 day, 0:00:00)"},
    }) do
      local got = info.expiration(case[1], case[2])
      assert(got == case[3], string.format("%.17g, %.17g: %s", case[1], case[2], got))
    end
  )LUA") == "");
}

TEST_CASE("image cache: the original's smoke flow — four images and a refused query",
          "[image_cache]") {
  ImageCache cache;
  std::regex id_shape("^[0-9a-f]{64}_[0-9]+\\.[0-9]+$");
  struct Case {
    json body;
    std::string type;
  };
  std::vector<Case> cases = {
      {{{"api_query", query("png", {{"name", "q1"}})}, {"ttl", 600}}, "image/png"},
      {{{"api_query", query("png", {{"name", "q2"}})}}, "image/png"},
      {{{"api_query", query("png", {{"name", "q3"}})}, {"ttl", 120}}, "image/png"},
      {{{"api_query", query("pdf", {{"name", "q4"}})}, {"ttl", 60}}, "application/pdf"},
  };
  for (const auto& c : cases) {
    std::string id = request_id(cache.port(), c.body);
    CHECK(std::regex_match(id, id_shape));
    auto image = http_request(cache.port(), "GET", "/image/" + id);
    CHECK(image.status == 200);
    CHECK(image.header("content-type") == c.type);
    CHECK_FALSE(image.body.empty());
  }
  json bad = query("png", {{"name", "bad"}});
  bad["queries"][0]["query"]["metric"] = "buckets";
  bad.erase("imageType");
  std::string id = request_id(cache.port(), {{"api_query", bad}, {"ttl", 120}});
  auto refused = http_request(cache.port(), "GET", "/image/" + id);
  CHECK(refused.status == 400);
  auto body = json::parse(refused.body);
  CHECK(body["type"] == "Kentik API error");
  CHECK(body["loc"] == id);
  CHECK(body["msg"][0].get<std::string>().find("Invalid metric") != std::string::npos);
  auto listing = json::parse(http_request(cache.port(), "GET", "/info").body);
  CHECK(listing["active_count"] == 5);
  CHECK(listing["pending_count"] == 0);
  CHECK(listing["active_entries"][0]["expiration"].get<std::string>().find(
            "+00:00 (remaining: 0:") != std::string::npos);
  CHECK(http_request(cache.port(), "GET", "/favicon.ico").header("content-type") == "image/x-icon");
}

TEST_CASE("image cache: validation errors keep FastAPI's shapes, ttl is coerced like pydantic",
          "[image_cache]") {
  ImageCache cache;
  auto bad_ttl = http_request(cache.port(), "POST", "/requests",
                              R"({"api_query": {"a": 1}, "ttl": "soon"})", kJson);
  CHECK(bad_ttl.status == 422);
  CHECK(
      json::parse(bad_ttl.body) ==
      json::parse(
          R"({"detail":[{"loc":["body","ttl"],"msg":"value is not a valid integer","type":"type_error.integer"}]})"));
  auto empty = http_request(cache.port(), "POST", "/requests", "", kJson);
  CHECK(empty.status == 422);
  CHECK(json::parse(empty.body)["detail"][0]["type"] == "value_error.missing");
  CHECK(http_request(cache.port(), "POST", "/requests", "[1]", kJson).status == 422);
  auto missing = http_request(cache.port(), "POST", "/requests", R"({"ttl": 300})", kJson);
  CHECK(missing.status == 400);
  CHECK(
      json::parse(missing.body) ==
      json::parse(
          R"({"loc":{"api_query":null,"ttl":300},"msg":"Incomplete request, missing 'api_query'","type":"invalid request"})"));
  auto now = static_cast<double>(time(nullptr));
  for (auto [ttl, seconds] :
       std::vector<std::pair<json, double>>{{"60", 60}, {60.7, 60}, {true, 1}}) {
    std::string id = request_id(
        cache.port(), {{"api_query", query("png", {{"name", "ttl" + ttl.dump()}})}, {"ttl", ttl}});
    double expiry = std::stod(id.substr(65));
    CHECK(expiry - now == Approx(seconds).margin(3));
  }
}

TEST_CASE("image cache: unknown and expired ids are 404", "[image_cache]") {
  ImageCache cache;
  auto unknown =
      http_request(cache.port(), "GET", "/image/" + std::string(64, 'a') + "_9999999999.0");
  CHECK(unknown.status == 404);
  CHECK(json::parse(unknown.body) == json({{"loc", std::string(64, 'a') + "_9999999999.0"},
                                           {"msg", "Image not found"},
                                           {"type", "error"}}));
  CHECK(http_request(cache.port(), "GET", "/image/nonsense").status == 404);
  // Longer than any id (and than a kv key may be): still the 404, not a 500.
  for (const std::string& id : {std::string(600, 'a') + "_9999999999.0",
                                std::string(64, 'a') + "_" + std::string(600, '9')}) {
    auto too_long = http_request(cache.port(), "GET", "/image/" + id);
    CHECK(too_long.status == 404);
    CHECK(json::parse(too_long.body)["msg"] == "Image not found");
  }
  std::string born_expired =
      request_id(cache.port(), {{"api_query", query("png", {{"name", "expired"}})}, {"ttl", -5}});
  CHECK(http_request(cache.port(), "GET", "/image/" + born_expired).status == 404);
}

TEST_CASE("image cache: upstream failures are stored as errors, retries hit the upstream again",
          "[image_cache]") {
  ImageCache cache;
  auto outcome = [&](json stub) {
    std::string id = request_id(cache.port(), {{"api_query", query("png", stub)}});
    return http_request(cache.port(), "GET", "/image/" + id);
  };
  auto unauthorized = outcome({{"name", "auth"}, {"status", 401}, {"message", "no such user"}});
  CHECK(unauthorized.status == 401);
  CHECK(json::parse(unauthorized.body)["msg"] == json::array({"no such user"}));
  auto recovered = outcome({{"name", "flaky"}, {"fail_times", 2}});
  CHECK(recovered.status == 200);
  CHECK(upstream_calls(cache.port(), "flaky") == 3);
  auto exhausted = outcome({{"name", "down"}, {"status", 503}});
  CHECK(exhausted.status == 503);
  CHECK(upstream_calls(cache.port(), "down") == 3);
  auto slow = outcome({{"name", "slow"}, {"delay", 3}});
  CHECK(slow.status == 500);
  CHECK(json::parse(slow.body)["msg"] == json::array({"Request timeout"}));
  auto bad_mime = outcome({{"name", "mime"}, {"mime", "text/html"}});
  CHECK(bad_mime.status == 502);
  auto undecodable = outcome({{"name", "garbage"}, {"payload", "%%%not base64"}});
  CHECK(undecodable.status == 502);
  auto not_object =
      http_request(cache.port(), "POST", "/requests", R"({"api_query": [1, 2]})", kJson);
  CHECK(http_request(cache.port(), "GET",
                     "/image/" + json::parse(not_object.body)["id"].get<std::string>())
            .status == 502);
}

TEST_CASE("image cache: identical concurrent requests share one entry and one fetch",
          "[image_cache]") {
  ImageCache cache;
  json body = {{"api_query", query("png", {{"name", "shared"}, {"delay", 0.3}})}, {"ttl", 600}};
  std::vector<std::string> ids(10);
  std::vector<std::thread> clients;
  for (int i = 0; i < 10; ++i)
    clients.emplace_back([&, i] { ids[i] = request_id(cache.port(), body); });
  for (auto& client : clients) client.join();
  for (const auto& id : ids) CHECK(id == ids[0]);
  CHECK(http_request(cache.port(), "GET", "/image/" + ids[0]).status == 200);
  CHECK(upstream_calls(cache.port(), "shared") == 1);
}

TEST_CASE("image cache: many readers wait on a pending image without slowing other routes",
          "[image_cache]") {
  ImageCache cache;
  std::string id = request_id(cache.port(),
                              {{"api_query", query("png", {{"name", "awaited"}, {"delay", 0.8}})}});
  std::atomic<int> served{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 100; ++i) {
    readers.emplace_back([&] {
      if (http_request(cache.port(), "GET", "/image/" + id).status == 200) ++served;
    });
  }
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();
  auto listing = json::parse(http_request(cache.port(), "GET", "/info").body);
  CHECK(std::chrono::steady_clock::now() - start < 200ms);
  CHECK(listing["pending_count"] == 1);
  for (auto& reader : readers) reader.join();
  CHECK(served == 100);
}

TEST_CASE("image cache: an entry pending at shutdown is fetched after a restart", "[image_cache]") {
  auto data = depot::testing::make_temp_dir("depot-image-cache-");
  json patient = {{"KENTIK_API_TIMEOUT", 10}, {"ENTRY_WAIT_TIMEOUT", 15}};
  std::string id;
  {
    ImageCache before(patient, data);
    id = request_id(before.port(),
                    {{"api_query", query("png", {{"name", "restart"}, {"delay", 1}})}});
  }  // stopped while the stub still sleeps: the entry stays pending on disk
  auto restarted = std::chrono::steady_clock::now();
  ImageCache after(patient, data);
  CHECK(json::parse(http_request(after.port(), "GET", "/info").body)["pending_count"] == 1);
  CHECK(std::chrono::steady_clock::now() - restarted <
        500ms);  // the refetch runs in the background
  auto image = http_request(after.port(), "GET", "/image/" + id);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count();
  CHECK(image.status == 200);
  CHECK(image.body == "png-image-bytes-restart");
  WARN("restart to all pending entries refetched: " << seconds << " s (the stub takes 1 s)");
  std::filesystem::remove_all(data);
}

TEST_CASE("image cache: /info streams the listing in the original's byte format", "[image_cache]") {
  ImageCache cache;
  for (const char* name : {"i1", "i2", "i3"})
    request_id(cache.port(), {{"api_query", query("png", {{"name", name}})}});
  std::string failed =
      request_id(cache.port(), {{"api_query", query("png", {{"name", "e1"}, {"status", 401}})}});
  for (const char* name : {"i1", "i2", "i3"}) {
    std::string id = request_id(cache.port(), {{"api_query", query("png", {{"name", name}})}});
    REQUIRE(http_request(cache.port(), "GET", "/image/" + id).status == 200);
  }
  REQUIRE(http_request(cache.port(), "GET", "/image/" + failed).status == 401);
  json waiting = {{"api_query", query("svg", {{"name", "p1"}, {"delay", 0.8}})}};
  std::string pending = request_id(cache.port(), waiting);
  auto info = http_request(cache.port(), "GET", "/info");
  REQUIRE(info.status == 200);
  CHECK(info.header("transfer-encoding") == "chunked");
  CHECK(info.header("content-type") == "application/json");
  auto listing = json::parse(info.body);
  CHECK(info.body == listing.dump());  // compact, keys in byte order: what json.encode wrote before
  CHECK(listing["active_count"] == 4);
  CHECK(listing["active_entries"].size() == 4);
  CHECK(listing["pending_count"] == 1);
  REQUIRE(listing["pending_entries"].size() == 1);
  auto row = listing["pending_entries"][0];
  CHECK(row["id"] == pending);
  CHECK(row["type"] == "api_request");
  CHECK(row["size"] ==
        waiting["api_query"].dump().size());  // a pending entry's size: its query text
  std::set<std::string> types;
  std::vector<std::string> ids;
  for (const auto& active : listing["active_entries"]) {
    types.insert(active["type"].get<std::string>());
    ids.push_back(active["id"]);
  }
  CHECK(types == std::set<std::string>{"image", "api_error"});
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(http_request(cache.port(), "GET", "/image/" + pending).status == 200);
}

TEST_CASE("image cache: /info pages through the listing index and escapes the ids that need it",
          "[image_cache]") {
  ImageCache cache;
  auto seed_script = depot::testing::make_temp_dir("depot-image-cache-") / "seed.lua";
  // Listing rows written straight into the index: 450 plain ids (three pages), ids that only
  // json.encode writes right, an expiry in layout 3's decimal spelling next to the same one in
  // hexadecimal, and a row without an expiry.
  std::ofstream(seed_script) << R"LUA(
    local kv = require "kv"
    local service = ...
    service:post("/write", function()
      local expiry = 1620973821.2844
      kv.open("image_cache"):update(function(tx)
        for i = 1, 450 do tx:put(string.format("active:%03d", i), "image|" .. i .. "|" .. string.format("%a", expiry + i)) end
        for i, id in ipairs({ '200"quote', "200\\back", "200\1control", "200é" }) do
          tx:put("active:" .. id, "image|" .. i .. "|" .. string.format("%a", expiry))
        end
        tx:put("active:decimal", "api_error|7|" .. string.format("%.17g", expiry))
        tx:put("active:hexadecimal", "api_error|7|" .. string.format("%a", expiry))
        tx:put("active:none", "api_request|0|")
      end)
      return { written = true }
    end)
  )LUA";
  REQUIRE(cache.server->server().add_service({"seed", seed_script, {"/seed"}}).empty());
  REQUIRE(http_request(cache.port(), "POST", "/seed/write").status == 200);
  auto info = http_request(cache.port(), "GET", "/info");
  REQUIRE(info.status == 200);
  auto listing = json::parse(info.body);
  CHECK(info.body == listing.dump());  // json.encode's escapes and key order, compact
  CHECK(listing["active_count"] == 457);
  REQUIRE(listing["active_entries"].size() == 457);
  std::map<std::string, json> rows;
  for (const auto& row : listing["active_entries"]) rows[row["id"].get<std::string>()] = row;
  CHECK(rows.size() == 457);
  for (const char* id : {"200\"quote", "200\\back", "200\1control", "200é"})
    CHECK(rows.count(id) == 1);
  CHECK(rows["001"]["size"] == 1);
  CHECK(rows["450"]["type"] == "image");
  CHECK(rows["decimal"]["expiration"] == rows["hexadecimal"]["expiration"]);
  CHECK(rows["decimal"]["expiration"].get<std::string>().rfind(
            "2021-05-14T06:30:21.284400+00:00 (remaining: -", 0) == 0);
  CHECK(rows["none"]["expiration"] == "<invalid>");
  CHECK(rows["none"]["type"] == "api_request");
}

TEST_CASE(
    "image cache: a cache written by the earlier layout is indexed at start, expired entries "
    "pruned in batches",
    "[image_cache][fs_layout]") {
  auto data = depot::testing::make_temp_dir("depot-image-cache-");
  auto seed_script = data / "seed.lua";
  // The earlier layout: entry:<id> records (settled ones still carrying their query) and
  // query:<hash> → id, nothing else. 300 live and 250 expired entries: more than one batch each.
  std::ofstream(seed_script) << R"LUA(
    local kv = require "kv"
    local fs = require "fs"
    local depot = require "depot"
    local service = ...
    service:post("/write", function()
      local db = kv.open("image_cache")
      local now = depot.now()
      local ids = {}
      -- The service's own start-up upgrade of the empty cache must be over first.
      for _ = 1, 100 do
        if db:get("meta:layout") then break end
        depot.sleep(0.05)
      end
      db:update(function(tx)
        tx:delete("meta:layout")
        for i = 1, 550 do
          local expiry = i <= 300 and now + 3600 or now - 60
          local id = string.format("%064d_%.1f", i, expiry)
          ids[i] = id
          tx:put("entry:" .. id, { id = id, state = "image", type = "png", mime = "image/png", size = 5,
                                   query = '{"n": ' .. i .. '}', expiry = expiry, index = "query:" .. i })
          tx:put("query:" .. i, id)
        end
      end)
      for _, id in ipairs(ids) do assert(fs.write(depot.data_dir .. "/image_cache/" .. id, "bytes")) end
      return { written = #ids }
    end)
    service:get("/state", function()
      local db = kv.open("image_cache")
      local with_query = 0
      for _, item in ipairs(db:iter({ prefix = "entry:" })) do
        if item.value.query then with_query = with_query + 1 end
      end
      return { entries = db:count("entry:"), queries = db:count("query:"), expiry = db:count("expiry:"),
               with_query = with_query, files = #assert(fs.list(depot.data_dir .. "/image_cache")) }
    end)
  )LUA";
  auto with_seed = [&](ImageCache& cache) {
    REQUIRE(cache.server->server().add_service({"seed", seed_script, {"/seed"}}).empty());
  };
  {
    ImageCache before(json::object(), data);
    with_seed(before);
    REQUIRE(json::parse(http_request(before.port(), "POST", "/seed/write").body)["written"] == 550);
  }
  ImageCache after(json::object(), data);
  with_seed(after);
  json state;
  for (int i = 0; i < 50; ++i) {  // the upgrade and prune run in the background at start
    state = json::parse(http_request(after.port(), "GET", "/seed/state").body);
    if (state["entries"] == 300 && state["files"] == 300) break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(state == json({{"entries", 300},
                       {"queries", 300},
                       {"expiry", 300},
                       {"with_query", 0},
                       {"files", 300}}));
  auto listing = json::parse(http_request(after.port(), "GET", "/info").body);
  CHECK(listing["active_count"] == 300);
  CHECK(listing["active_entries"].size() == 300);
  std::set<std::string> unique;
  for (const auto& row : listing["active_entries"]) unique.insert(row["id"].get<std::string>());
  CHECK(unique.size() == 300);
  INFO(listing["active_entries"][0].dump() << " " << listing["active_entries"][299].dump() << " "
                                           << listing["active_entries"].back().dump());
  CHECK(listing["active_entries"][0]["size"] == 5);
  CHECK(listing["pending_count"] == 0);
  std::filesystem::remove_all(data);
}

TEST_CASE("image cache: the periodic prune removes what expired, its file and its query index",
          "[image_cache][fs_layout]") {
  ImageCache cache(json{{"CACHE_MAINTENANCE_PERIOD", 0.3}, {"INLINE_IMAGE_BYTES", 0}});
  json short_lived = {{"api_query", query("png", {{"name", "brief"}})}, {"ttl", 1}};
  std::string brief = request_id(cache.port(), short_lived);
  std::string lasting =
      request_id(cache.port(), {{"api_query", query("png", {{"name", "lasting"}})}});
  REQUIRE(http_request(cache.port(), "GET", "/image/" + brief).status == 200);
  REQUIRE(http_request(cache.port(), "GET", "/image/" + lasting).status == 200);
  auto cache_dir = cache.server->data_dir() / "image_cache";
  CHECK(std::filesystem::exists(cache_dir / brief));
  json listing;
  for (int i = 0; i < 50; ++i) {  // expired after 1 s, pruned within 0.3 s of that (file last)
    listing = json::parse(http_request(cache.port(), "GET", "/info").body);
    if (listing["active_count"] == 1 && !std::filesystem::exists(cache_dir / brief)) break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(listing["active_count"] == 1);
  CHECK(listing["active_entries"][0]["id"] == lasting);
  CHECK_FALSE(std::filesystem::exists(cache_dir / brief));
  CHECK(std::filesystem::exists(cache_dir / lasting));
  CHECK(request_id(cache.port(), short_lived) != brief);  // the query index no longer points at it
}

TEST_CASE(
    "image cache: images up to INLINE_IMAGE_BYTES live in kv, larger ones in a file, the prune "
    "removes both",
    "[image_cache][fs_layout]") {
  ImageCache cache(json{{"CACHE_MAINTENANCE_PERIOD", 0.3}, {"INLINE_IMAGE_BYTES", 100}});
  auto peek = depot::testing::make_temp_dir("depot-image-cache-") / "peek.lua";
  std::ofstream(peek) << R"LUA(
    local service = ...
    service:get("/count", function() return { inline = require("kv").open("image_cache_bytes"):count() } end)
  )LUA";
  REQUIRE(cache.server->server().add_service({"peek", peek, {"/peek"}}).empty());
  auto inline_count = [&] {
    return json::parse(http_request(cache.port(), "GET", "/peek/count").body)["inline"];
  };
  auto repeated = [](const std::string& text, int times) {
    std::string out;
    for (int i = 0; i < times; ++i) out += text;
    return out;
  };
  std::string small = repeated("ABC", 33), large = repeated("ABC", 34);  // 99 and 102 bytes
  // "QUJD" is base64 of "ABC". Queries without a null: sent upstream as posted, not re-encoded.
  auto post = [&](const std::string& name, int times) {
    json stub = {{"name", name}, {"payload", repeated("QUJD", times)}};
    return request_id(cache.port(),
                      {{"api_query", {{"imageType", "png"}, {"stub", stub}}}, {"ttl", 1}});
  };
  std::string kept = post("small", 33), filed = post("large", 34);
  for (const auto& [id, bytes] : {std::pair{kept, small}, std::pair{filed, large}}) {
    auto image = http_request(cache.port(), "GET", "/image/" + id);
    REQUIRE(image.status == 200);
    CHECK(image.header("content-type") == "image/png");
    CHECK(image.body == bytes);
  }
  auto cache_dir = cache.server->data_dir() / "image_cache";
  CHECK_FALSE(std::filesystem::exists(cache_dir / kept));
  CHECK(std::filesystem::exists(cache_dir / filed));
  CHECK(inline_count() == 1);
  for (int i = 0; i < 50 && (inline_count() != 0 || std::filesystem::exists(cache_dir / filed));
       ++i)
    std::this_thread::sleep_for(100ms);
  CHECK(inline_count() == 0);
  CHECK_FALSE(std::filesystem::exists(cache_dir / filed));
  CHECK(http_request(cache.port(), "GET", "/image/" + kept).status == 404);
}

TEST_CASE("image cache: what no route handles answers like FastAPI", "[image_cache]") {
  ImageCache cache;
  auto wrong_method = http_request(cache.port(), "GET", "/requests");
  CHECK(wrong_method.status == 405);
  CHECK(json::parse(wrong_method.body) == json({{"detail", "Method Not Allowed"}}));
  for (const char* path : {"/image/", "/image/a/b", "/nothing"}) {
    auto missing = http_request(cache.port(), "GET", path);
    CHECK(missing.status == 404);
    CHECK(json::parse(missing.body) == json({{"detail", "Not Found"}}));
  }
  std::string body = json({{"api_query", query("png", {{"name", "plain"}})}}).dump();
  auto as_text = http_request(cache.port(), "POST", "/requests", body, "Content-Type: text/plain");
  CHECK(as_text.status == 422);
  CHECK(
      json::parse(as_text.body) ==
      json::parse(
          R"({"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]})"));
  CHECK(http_request(cache.port(), "POST", "/requests", body).status ==
        200);  // no Content-Type: JSON
  CHECK(http_request(cache.port(), "POST", "/requests", body,
                     "Content-Type: application/vnd.api+json")
            .status == 200);
}

// scripts/image_cache/group_commit.lua, with two databases standing for its durable and batched
// handles so that the keys tell which commit carried an item: what tasks of one turn ask shares
// one transaction, durable when one item is; a batched group alone is batched, and a durable item
// that comes while it waits brings its commit forward.
TEST_CASE("image cache: group commits carry batched and durable writes of a turn together",
          "[image_cache]") {
  const std::string script = std::string("package.path = '") + DEPOT_SOURCE_DIR +
                             "/scripts/?.lua;' .. package.path\n" + R"LUA(
local depot = require "depot"
local jobs = require "jobs"
local json = require "json"
local kv = require "kv"
local GroupCommit = require "image_cache.group_commit"
local service = ...
local durable, batched = kv.open("group_durable"), kv.open("group_batched", { durable = false })
local writes = GroupCommit.new("test", durable, batched)

local function put(tx, item)
  tx:put(item.key, tostring(tx))
  if item.fail then error("refused") end
  return item.key
end

-- Each item {key, durable, after (seconds before it asks), fail} asks from a task of its own;
-- answers, per key: its result (or error), the transaction that wrote it in each database, and
-- the seconds it waited.
service:post("/run", function(req)
  local items, outcome, ended, delay = req:json(), {}, 0, GroupCommit.BATCHED_DELAY
  GroupCommit.BATCHED_DELAY = tonumber(req.query.delay) or delay
  for _, item in ipairs(items) do
    jobs.after(item.after or 0, function()
      local started = depot.monotonic()
      local ok, result = pcall(writes.run, writes, put, { key = item.key, fail = item.fail }, item.durable)
      outcome[item.key] = { result = ok and result or tostring(result), waited = depot.monotonic() - started,
                            durable = durable:get(item.key) or "", batched = batched:get(item.key) or "" }
      ended = ended + 1
    end)
  end
  while ended < #items do depot.sleep(0.001) end
  GroupCommit.BATCHED_DELAY = delay
  return outcome
end)
)LUA";
  TestServer server("group_commit", script);
  auto run = [&](const json& items, const std::string& delay = "") {
    auto response = http_request(server.port(), "POST", "/run" + delay, items.dump(), kJson);
    REQUIRE(response.status == 200);
    return json::parse(response.body);
  };

  json mixed = run({{{"key", "settle"}}, {{"key", "create"}, {"durable", true}}});
  CHECK(mixed["settle"]["result"] == "settle");
  CHECK(mixed["create"]["result"] == "create");
  CHECK(mixed["settle"]["durable"] != "");  // in the durable commit, with the creation
  CHECK(mixed["settle"]["durable"] == mixed["create"]["durable"]);
  CHECK(mixed["settle"]["batched"] == "");

  json alone = run({{{"key", "lonely"}}});
  CHECK(alone["lonely"]["batched"] != "");
  CHECK(alone["lonely"]["durable"] == "");

  // The batched item would wait 2 s for company; the durable one comes 20 ms later.
  json joined =
      run({{{"key", "early"}}, {{"key", "late"}, {"durable", true}, {"after", 0.02}}}, "?delay=2");
  CHECK(joined["early"]["durable"] != "");
  CHECK(joined["early"]["durable"] == joined["late"]["durable"]);
  CHECK(joined["early"]["waited"].get<double>() < 1.5);

  json failed = run({{{"key", "kept?"}}, {{"key", "bad"}, {"durable", true}, {"fail", true}}});
  CHECK(failed["kept?"]["result"].get<std::string>().find("refused") != std::string::npos);
  CHECK(failed["bad"]["result"].get<std::string>().find("refused") != std::string::npos);
  CHECK(failed["kept?"]["durable"] == "");
  CHECK(failed["kept?"]["batched"] == "");
}
