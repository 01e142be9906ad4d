// What a script may put in a response head: header names (tokens) and values (no CR, LF, NUL or
// other controls) are refused in the Lua call that sets them, and so are statuses outside
// 200..599 — over real HTTP, reading the raw bytes so that an injected header would show.
#include <catch2/catch.hpp>
#include <fstream>

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

-- /try/<case>: runs the call under pcall and answers with its error message.
local attempts = {
  header_crlf = function(res) res:header("X", "a\r\nSet-Cookie: s=1") end,
  header_lf = function(res) res:header("X", "a\nSet-Cookie: s=1") end,
  header_nul = function(res) res:header("X", "a\0b") end,
  header_control = function(res) res:header("X", "a\1b") end,
  name_space = function(res) res:header("X Y", "v") end,
  name_crlf = function(res) res:header("X\r\nSet-Cookie", "s=1") end,
  name_empty = function(res) res:header("", "v") end,
  name_colon = function(res) res:header("X:", "v") end,
  send_value = function(res) res:send(200, "body", { X = "a\r\nSet-Cookie: s=1" }) end,
  send_name = function(res) res:send(200, "body", { ["Bad Name"] = "v" }) end,
  send_table_value = function(res) res:send(200, "body", { X = {} }) end,
  send_not_table = function(res) res:send(200, "body", "X: y") end,
  json_value = function(res) res:json(200, {}, { X = "a\r\nb: c" }) end,
  start_value = function(res) res:start(200, { X = "a\r\nSet-Cookie: s=1" }) end,
  file_content_type = function(res, path) res:file(path, { content_type = "a\r\nb: c" }) end,
  file_header = function(res, path) res:file(path, { headers = { X = "a\nb: c" } }) end,
  file_missing_content_type = function(res) res:file("/nonexistent", { content_type = "a\r\nb: c" }) end,
  file_download_name = function(res, path) res:file(path, { download_name = 7 }) end,
  fail_header = function() depot.fail(403, "no", { X = "a\r\nSet-Cookie: s=1" }) end,
  start_0 = function(res) res:start(0) end,
  start_99 = function(res) res:start(99) end,
  start_100 = function(res) res:start(100) end,
  start_600 = function(res) res:start(600) end,
  send_100 = function(res) res:send(100, "body") end,
  send_199 = function(res) res:send(199, "body") end,
  send_fraction = function(res) res:send(200.5, "body") end,
  send_string = function(res) res:send("200", "body") end,
  file_status = function(res, path) res:file(path, { status = "00/" }) end,
  file_status_1xx = function(res, path) res:file(path, { status = 101 }) end,
  fail_status = function() depot.fail(99, "no") end,
}

service:get("/try/:case", function(req, res)
  local ok, err = pcall(attempts[req.params.case], res, req.query.path)
  if res:started() then return end
  return { ok = ok, error = tostring(err) }
end)

-- The same calls unprotected: the handler fails (500) and nothing of the header goes out.
service:get("/raw/:case", function(req, res)
  attempts[req.params.case](res, req.query.path)
  return "not reached"
end)

service:get("/return/header", function() return 200, "body", { X = "a\r\nSet-Cookie: s=1" } end)
service:get("/return/status", function() return 99, "body" end)
service:get("/valid", function(req, res)
  res:header("X-Number", 7)
  res:header("X-Text", "caf\195\169\tand more")
  return 234, "odd but valid", { ["X-Other"] = 12 }
end)
)LUA";

const char* const kOnErrorRoutes = R"LUA(
local depot = require "depot"
local service = ...
service:on_error(function(status, message)
  if message == "bad header" then return status, "shaped", { X = "a\r\nSet-Cookie: s=1" } end
  if message == "bad status" then return 100, "shaped" end
  return { shaped = message }
end)
service:get("/bad-header", function() depot.fail(403, "bad header") end)
service:get("/bad-status", function() depot.fail(403, "bad status") end)
)LUA";

// Every byte of one answer to a GET that closes the connection.
std::string raw_answer(uint16_t port, const std::string& target) {
  RawConnection connection(port);
  connection.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string bytes;
  for (std::string more = connection.read_some(2s); !more.empty(); more = connection.read_some(2s))
    bytes += more;
  return bytes;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// For each /try/<case> (with `query`), the error message the call must raise.
void check_errors(uint16_t port, const std::string& query,
                  const std::vector<std::pair<std::string, std::string>>& expected) {
  for (const auto& [name, message] : expected) {
    INFO(name);
    auto response = http_request(port, "GET", "/try/" + name + query);
    REQUIRE(response.status == 200);
    auto result = nlohmann::json::parse(response.body);
    CHECK(result["ok"] == false);
    CHECK(contains(result["error"].get<std::string>(), message));
  }
}
}  // namespace

TEST_CASE("res:header refuses values with CR, LF, NUL or controls and names that are no token",
          "[response]") {
  TestServer server("app", kRoutes);
  check_errors(server.port(), "",
               {{"header_crlf", "res:header: header \"X\" has an invalid value"},
                {"header_lf", "res:header: header \"X\" has an invalid value"},
                {"header_nul", "res:header: header \"X\" has an invalid value"},
                {"header_control", "res:header: header \"X\" has an invalid value"},
                {"name_space", "res:header: invalid header name \"X Y\""},
                {"name_crlf", "res:header: invalid header name \"X\\x0d\\x0aSet-Cookie\""},
                {"name_empty", "res:header: invalid header name \"\""},
                {"name_colon", "res:header: invalid header name \"X:\""}});
}

TEST_CASE(
    "headers tables of res:send, res:json, res:start, res:file and depot.fail are checked alike",
    "[response]") {
  TestServer server("app", kRoutes);
  auto path = server.data_dir() / "sample.txt";
  std::ofstream(path) << "content";
  check_errors(
      server.port(), "?path=" + path.string(),
      {{"send_value", "res:send: header \"X\" has an invalid value"},
       {"send_name", "res:send: invalid header name \"Bad Name\""},
       {"send_table_value", "res:send: header \"X\" must be a string or a number"},
       {"send_not_table", "res:send: headers must be a table"},
       {"json_value", "res:json: header \"X\" has an invalid value"},
       {"start_value", "res:start: header \"X\" has an invalid value"},
       {"file_content_type", "res:file: options.content_type has an invalid value"},
       {"file_missing_content_type", "res:file: options.content_type has an invalid value"},
       {"file_header", "res:file: header \"X\" has an invalid value"},
       {"file_download_name", "res:file: options.download_name must be a string"},
       {"fail_header", "depot.fail: header \"X\" has an invalid value"}});
}

TEST_CASE("an injected header never reaches the wire: the call fails the request with 500",
          "[response]") {
  TestServer server("app", kRoutes);
  uint16_t port = server.port();
  auto path = server.data_dir() / "sample.txt";
  std::ofstream(path) << "content";
  std::string file = "?path=" + path.string();
  for (const std::string& target :
       std::vector<std::string>{"/raw/header_crlf", "/raw/name_crlf", "/raw/send_value",
                                "/raw/start_value", "/raw/fail_header", "/return/header",
                                "/raw/file_content_type" + file, "/raw/file_header" + file}) {
    INFO(target);
    std::string bytes = raw_answer(port, target);
    CHECK(bytes.rfind("HTTP/1.1 500 ", 0) == 0);
    CHECK_FALSE(contains(bytes, "Set-Cookie"));
    CHECK_FALSE(contains(bytes, "\r\nb: c"));
    CHECK_FALSE(contains(bytes, "not reached"));
  }
}

TEST_CASE("an on_error handler answering with a bad header or status gets the engine's 500",
          "[response]") {
  TestServer server("app", kOnErrorRoutes);
  for (std::string target : {"/bad-header", "/bad-status"}) {
    INFO(target);
    std::string bytes = raw_answer(server.port(), target);
    CHECK(bytes.rfind("HTTP/1.1 500 ", 0) == 0);
    CHECK_FALSE(contains(bytes, "Set-Cookie"));
    CHECK_FALSE(contains(bytes, "shaped"));
    CHECK(contains(bytes, "internal server error"));
  }
}

TEST_CASE("valid headers go out: numbers, obs-text and tabs in values, any status 200..599",
          "[response]") {
  TestServer server("app", kRoutes);
  auto response = http_request(server.port(), "GET", "/valid");
  CHECK(response.status == 234);
  CHECK(response.body == "odd but valid");
  CHECK(response.header("x-number") == "7");
  CHECK(response.header("x-text") == "caf\xc3\xa9\tand more");
  CHECK(response.header("x-other") == "12");
}

TEST_CASE("only integers 200..599 are final statuses, anything else raises naming the call",
          "[response]") {
  TestServer server("app", kRoutes);
  auto path = server.data_dir() / "sample.txt";
  std::ofstream(path) << "content";
  const std::string must = " must be an integer 200..599, got ";
  check_errors(server.port(), "?path=" + path.string(),
               {{"start_0", "res:start: status" + must + "0"},
                {"start_99", "res:start: status" + must + "99"},
                {"start_100", "res:start: status" + must + "100"},
                {"start_600", "res:start: status" + must + "600"},
                {"send_100", "res:send: status" + must + "100"},
                {"send_199", "res:send: status" + must + "199"},
                {"send_fraction", "res:send: status" + must + "200.5"},
                {"send_string", "res:send: status" + must + "string"},
                {"file_status", "res:file: options.status" + must + "string"},
                {"file_status_1xx", "res:file: options.status" + must + "101"},
                {"fail_status", "depot.fail: status" + must + "99"}});
}

TEST_CASE("a refused status leaves a kept-alive connection in sync", "[response]") {
  TestServer server("app", kRoutes);
  RawConnection connection(server.port());
  for (std::string target : {"/raw/send_100", "/raw/start_0", "/return/status"}) {
    INFO(target);
    connection.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    auto failed = connection.read_response();
    REQUIRE(failed);
    CHECK(failed->status == 500);
    CHECK_FALSE(contains(failed->body, "not reached"));
    connection.send("GET /valid HTTP/1.1\r\nHost: x\r\n\r\n");
    auto next = connection.read_response();
    REQUIRE(next);
    CHECK(next->status == 234);
    CHECK(next->body == "odd but valid");
  }
}
