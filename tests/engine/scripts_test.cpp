// What route scripts get from the engine: multipart parts streamed one by one, streaming
// responses, per-service error shapes, filters (and routes that skip them), routes under some of
// a service's mounts, on_start hooks, deadlines and budgets.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {
const char* const kRoutes = R"LUA(
local depot = require "depot"
local service = ...
service:post("/parts", function(req)
  local seen = {}
  for part in req:parts() do
    local size, pieces = 0, 0
    while true do
      local chunk = part:read()
      if not chunk then break end
      size, pieces = size + #chunk, pieces + 1
    end
    seen[#seen + 1] = { name = part.name, filename = part.filename or "", type = part.content_type or "", size = size }
  end
  return seen
end)
service:post("/fields", function(req)
  local fields = {}
  for part in req:parts() do
    local text = part:text()
    fields[part.name] = part.filename and #text or text
  end
  return fields
end)
service:get("/spin", function() while true do end end)
service:get("/wait", function() depot.sleep(5); return "late" end)
service:get("/chunks", function(req, res)
  res:start(200, { ["Content-Type"] = "text/plain" })
  for i = 1, 3 do res:write("part" .. i .. ";") end
end)
service:on_error(function(status, message) return { status = "error", code = status, error = message } end)
)LUA";

std::string multipart_body(const std::string& boundary, size_t file_size) {
  std::string body = "preamble to ignore\r\n--" + boundary + "\r\n";
  body +=
      "Content-Disposition: form-data; name=\"note\"\r\n\r\nhello there\r\n--" + boundary + "\r\n";
  body += "Content-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n";
  body += "Content-Type: application/octet-stream\r\n\r\n";
  for (size_t i = 0; i < file_size; ++i) body.push_back(static_cast<char>(i % 251));
  body += "\r\n--" + boundary + "--\r\nepilogue";
  return body;
}
}  // namespace

TEST_CASE("multipart parts arrive one by one, their data in chunks", "[scripts]") {
  TestServer server("app", kRoutes);
  std::string boundary = "----depotBoundary7MA4YWxkTrZu0gW";
  std::string body = multipart_body(boundary, 3 * 1024 * 1024);
  auto response = http_request(server.port(), "POST", "/parts", body,
                               "Content-Type: multipart/form-data; boundary=" + boundary);
  CHECK(response.status == 200);
  CHECK(
      response.body ==
      R"([{"filename":"","name":"note","size":11,"type":""},)"
      R"({"filename":"data.bin","name":"file","size":3145728,"type":"application/octet-stream"}])");
  auto fields = http_request(server.port(), "POST", "/fields", body,
                             "Content-Type: multipart/form-data; boundary=\"" + boundary + "\"");
  CHECK(fields.body == R"({"file":3145728,"note":"hello there"})");
}

TEST_CASE("a malformed multipart body is a 400 in the service's error shape", "[scripts]") {
  TestServer server("app", kRoutes);
  auto truncated = http_request(server.port(), "POST", "/parts",
                                "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nabc",
                                "Content-Type: multipart/form-data; boundary=b");
  CHECK(truncated.status == 400);
  CHECK(truncated.body.find(R"("status":"error")") != std::string::npos);
  auto not_multipart =
      http_request(server.port(), "POST", "/parts", "{}", "Content-Type: application/json");
  CHECK(not_multipart.status == 400);
}

TEST_CASE("a service's own error shape answers 404 and 405", "[scripts]") {
  TestServer server("app", kRoutes);
  auto missing = http_request(server.port(), "GET", "/nothing/here");
  CHECK(missing.status == 404);
  CHECK(missing.body == R"({"code":404,"error":"not found","status":"error"})");
  CHECK(http_request(server.port(), "PUT", "/parts").status == 405);
}

TEST_CASE("a handler that returns without finishing its stream still ends it", "[scripts]") {
  TestServer server("app", kRoutes);
  auto response = http_request(server.port(), "GET", "/chunks");
  CHECK(response.body == "part1;part2;part3;");
  CHECK(response.header("transfer-encoding") == "chunked");
}

TEST_CASE("a waiting handler past its deadline gets 503, the worker keeps serving", "[scripts]") {
  TestServer server("app", kRoutes,
                    [](depot::Options& options) { options.limits.request_deadline = 500ms; });
  auto start = std::chrono::steady_clock::now();
  auto response = http_request(server.port(), "GET", "/wait");
  CHECK(response.status == 503);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(http_request(server.port(), "GET", "/chunks").status == 200);
}

TEST_CASE("a runaway loop is stopped by the instruction budget with a 500", "[scripts]") {
  TestServer server("app", kRoutes, [](depot::Options& options) {
    options.limits.instruction_budget = 50'000'000;
  });
  auto response = http_request(server.port(), "GET", "/spin");
  CHECK(response.status == 500);
  CHECK(http_request(server.port(), "GET", "/chunks").status == 200);
}

TEST_CASE("filters run before handlers and can answer instead", "[scripts]") {
  TestServer server("app", R"LUA(
local service = ...
service:before(function(req)
  if req:header("X-Key") ~= "open sesame" then return 401, { error = "no key" } end
  req.user = "ali"
end)
service:get("/treasure", function(req) return { owner = req.user } end)
)LUA");
  CHECK(http_request(server.port(), "GET", "/treasure").status == 401);
  CHECK(http_request(server.port(), "GET", "/treasure", "", "X-Key: open sesame").body ==
        R"({"owner":"ali"})");
}

TEST_CASE("a route with before = false skips the filters, one with mounts is only under those",
          "[scripts]") {
  TestServer server({TestServer::Service{"app",
                                         R"LUA(
local service = ...
service:before(function() return 401, { error = "no key" } end)
service:get("/guarded", function() return "in" end)
service:get("/public", function() return "open" end, { before = false })
service:get("/second-only", function() return "second" end, { mounts = { "/second" } })
)LUA",
                                         {"/first", "/second"}}});
  CHECK(http_request(server.port(), "GET", "/first/guarded").status == 401);
  CHECK(http_request(server.port(), "GET", "/first/public").body == "open");
  CHECK(http_request(server.port(), "GET", "/second/public").body == "open");
  CHECK(http_request(server.port(), "GET", "/second/second-only", "", "X-Any: 1").status == 401);
  CHECK(http_request(server.port(), "GET", "/first/second-only").status == 404);
}

TEST_CASE("on_start hooks run as tasks when the scripts start serving", "[scripts]") {
  TestServer server("app", R"LUA(
local depot = require "depot"
local service = ...
local state = "not started"
service:on_start(function()
  state = "starting"
  depot.sleep(0.1)
  state = "ready"
end)
service:get("/state", function() return state end)
)LUA");
  std::this_thread::sleep_for(300ms);
  CHECK(http_request(server.port(), "GET", "/state").body == "ready");
}
