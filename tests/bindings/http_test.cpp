// http: outbound requests from handlers against routes served by the same Depot (one worker
// thread: nothing may block), retries, timeouts, transport errors, files both ways, concurrency.
#include <catch2/catch.hpp>
#include <atomic>
#include <fstream>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kUpstream = R"LUA(
local depot = require "depot"
local json = require "json"
local service = ...
local flaky_hits = 0
service:post("/up/echo", function(req)
  return { method = req.method, body = req:body(), header = req:header("X-Test") or "", query = req.query.q }
end)
service:get("/up/flaky", function()
  flaky_hits = flaky_hits + 1
  if flaky_hits % 3 ~= 0 then return 503, { busy = true } end
  return { hits = flaky_hits }
end)
service:get("/up/slow", function(req) depot.sleep(tonumber(req.query.s)); return "slow done" end)
service:get("/up/big", function() return string.rep("0123456789", 100000) end)
service:get("/up/redirect", function() return 302, "", { Location = "/up/big" } end)
service:put("/up/size", function(req)
  local total = 0
  while true do local chunk = req:read(); if not chunk then break end; total = total + #chunk end
  return { bytes = total }
end)
)LUA";

const char* const kClient = R"LUA(
local http = require "http"
local json = require "json"
local depot = require "depot"
local service = ...
local function base(req) return "http://" .. req:header("host") end
service:get("/call/echo", function(req)
  local response = assert(http.request("POST", base(req) .. "/up/echo?q=1", {
    headers = { ["X-Test"] = "yes", ["Content-Type"] = "text/plain" }, body = "payload" }))
  return { status = response.status, upstream = json.decode(response.body), type = response.headers["content-type"] }
end)
service:get("/call/flaky", function(req)
  local response = assert(http.get(base(req) .. "/up/flaky", { retries = 3, backoff = 0.01 }))
  return { status = response.status, attempts = response.attempts }
end)
service:get("/call/no-retry", function(req)
  local response = assert(http.get(base(req) .. "/up/flaky"))
  return { status = response.status, attempts = response.attempts }
end)
service:get("/call/timeout", function(req)
  local response, err, kind = http.get(base(req) .. "/up/slow?s=2", { timeout = 0.2 })
  return { failed = response == nil, kind = kind, mentions = err and err:find("http.request:", 1, true) ~= nil }
end)
service:get("/call/closed-port", function()
  local response, err, kind = http.get("http://127.0.0.1:1/nothing", { connect_timeout = 1 })
  return { failed = response == nil, kind = kind }
end)
service:get("/call/slow", function(req)
  return assert(http.get(base(req) .. "/up/slow?s=0.5")).body
end)
service:get("/call/download", function(req)
  local response = assert(http.get(base(req) .. "/up/redirect", { follow_redirects = true, output_file = req.query.to }))
  return { status = response.status, body_kept = #response.body }
end)
service:get("/call/upload", function(req)
  local response = assert(http.request("PUT", base(req) .. "/up/size", { body_file = req.query.from }))
  return json.decode(response.body)
end)
service:get("/call/too-big", function(req)
  local response, err = http.get(base(req) .. "/up/big", { max_body = 1000 })
  return { failed = response == nil, err = err }
end)
)LUA";

std::vector<TestServer::Service> upstream_and_client() {
  return {{"upstream", kUpstream}, {"client", kClient}};
}

nlohmann::json get_json(uint16_t port, const std::string& target) {
  return nlohmann::json::parse(http_request(port, "GET", target).body);
}
}  // namespace

TEST_CASE("http.request sends method, headers and body and reads the answer", "[http-client]") {
  TestServer server(upstream_and_client());
  auto result = get_json(server.port(), "/call/echo");
  CHECK(result["status"] == 200);
  CHECK(result["type"] == "application/json");
  CHECK(result["upstream"] == nlohmann::json({{"method", "POST"}, {"body", "payload"}, {"header", "yes"}, {"query", "1"}}));
}

TEST_CASE("http.request retries on listed statuses with backoff", "[http-client]") {
  TestServer server(upstream_and_client());
  auto retried = get_json(server.port(), "/call/flaky");
  CHECK(retried["status"] == 200);
  CHECK(retried["attempts"] == 3);
  auto single = get_json(server.port(), "/call/no-retry");
  CHECK(single["status"] == 503);
  CHECK(single["attempts"] == 1);
}

TEST_CASE("timeouts and transport errors return nil, a message and a kind", "[http-client]") {
  TestServer server(upstream_and_client());
  CHECK(get_json(server.port(), "/call/timeout") == nlohmann::json({{"failed", true}, {"kind", "timeout"}, {"mentions", true}}));
  CHECK(get_json(server.port(), "/call/closed-port") == nlohmann::json({{"failed", true}, {"kind", "connect"}}));
  auto too_big = get_json(server.port(), "/call/too-big");
  CHECK(too_big["failed"] == true);
  CHECK(too_big["err"].get<std::string>().find("max_body") != std::string::npos);
}

TEST_CASE("responses stream to files and request bodies from files; redirects are followed", "[http-client]") {
  TestServer server(upstream_and_client());
  auto target = server.data_dir() / "download.txt";
  auto result = get_json(server.port(), "/call/download?to=" + target.string());
  CHECK(result == nlohmann::json({{"status", 200}, {"body_kept", 0}}));
  CHECK(std::filesystem::file_size(target) == 1000000u);
  CHECK_FALSE(std::filesystem::exists(target.string() + ".part"));
  CHECK(get_json(server.port(), "/call/upload?from=" + target.string())["bytes"] == 1000000);
}

TEST_CASE("twenty concurrent calls to a slow upstream overlap on one worker thread", "[http-client]") {
  TestServer server(upstream_and_client());
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&] {
      if (http_request(server.port(), "GET", "/call/slow").body == "slow done") ++done;
    });
  }
  for (auto& client : clients) client.join();
  CHECK(done == 20);
  CHECK(std::chrono::steady_clock::now() - start < 3s);  // serially it would take 10 s
}
