// The `buffer` module (bindings/buffer.cpp) and http's buffer bodies, over real HTTP: a route
// fills a buffer (ranges of strings included) and sends it with http.request to a route of the
// same server that hashes what arrived; a buffer changed while its request is in flight must not
// change what is sent; bad arguments raise messages naming the function.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using nlohmann::json;

namespace {

const char* const kScript = R"LUA(
local buffer = require "buffer"
local crypto = require "crypto"
local depot = require "depot"
local http = require "http"
local jobs = require "jobs"
local service = ...

local function digest_url(req) return "http://" .. req:header("host") .. "/digest" end

service:post("/digest", function(req)
  local body = req:body()
  return { bytes = #body, sha256 = crypto.hex(crypto.sha256(body)) }
end)

local function expected(text) return { bytes = #text, sha256 = crypto.hex(crypto.sha256(text)) } end

-- Appends whole strings and string.sub ranges, then sends the buffer; answers what the digest
-- route saw next to what the same string.sub calls make.
service:get("/send", function(req)
  local data = string.rep("0123456789", 100000) -- 1 MB
  local buf = buffer.new(4096)
  local text = {}
  local function add(s, i, j) buf:append(s, i, j); text[#text + 1] = s:sub(i or 1, j or -1) end
  add(data)
  add("abcdef", 2, 4)
  add("abcdef", -2)
  add("abcdef", 5, 2)
  add("abcdef", -100, 100)
  add(data, 999990)
  local sent = assert(http.request("POST", digest_url(req), { body = buf }))
  local posted = assert(http.post(digest_url(req), buf))
  return { sent = sent.body, posted = posted.body, size = buf:size(), length = #buf,
           expected = expected(table.concat(text)) }
end)

-- The buffer is changed by another task while its request is in flight.
service:get("/in-flight", function(req)
  local buf = buffer.new():append(string.rep("x", 300000))
  jobs.after(0, function()
    buf:append("more")
    buf:clear():append("other")
  end)
  local sent = assert(http.request("POST", digest_url(req), { body = buf }))
  for _ = 1, 100 do -- the other task has surely run by now; wait for it all the same
    if buf:size() == 5 then break end
    depot.sleep(0.01)
  end
  return { sent = sent.body, expected = expected(string.rep("x", 300000)), after = buf:size() }
end)

service:get("/cleared", function(req)
  local buf = buffer.new():append("gone"):clear()
  local sent = assert(http.request("POST", digest_url(req), { body = buf }))
  return { sent = sent.body, size = buf:size() }
end)

service:get("/errors", function()
  local function message(fn) local ok, err = pcall(fn); return not ok and tostring(err) or "none" end
  local buf = buffer.new()
  return {
    capacity = message(function() buffer.new(-1) end),
    data = message(function() buf:append(42) end),
    range = message(function() buf:append("x", 1.5) end),
    method = message(function() buffer.new().append("x") end),
    body = message(function() http.request("POST", "http://127.0.0.1:1/", { body = {} }) end),
  }
end)
)LUA";

json get(uint16_t port, const std::string& path) {
  auto response = http_request(port, "GET", path);
  INFO(response.body);
  REQUIRE(response.status == 200);
  return json::parse(response.body);
}

}  // namespace

TEST_CASE("buffer: appended ranges are sent whole by http, without a copy",
          "[buffer][http-client]") {
  TestServer server({{"buffers", kScript, {"/"}}});
  json sent = get(server.port(), "/send");
  CHECK(json::parse(sent["sent"].get<std::string>()) == sent["expected"]);
  CHECK(json::parse(sent["posted"].get<std::string>()) == sent["expected"]);
  CHECK(sent["size"] == sent["expected"]["bytes"]);
  CHECK(sent["length"] == sent["expected"]["bytes"]);
  CHECK(sent["expected"]["bytes"] == 1000000 + 3 + 2 + 0 + 6 + 11);

  json cleared = get(server.port(), "/cleared");
  CHECK(json::parse(cleared["sent"].get<std::string>())["bytes"] == 0);
  CHECK(cleared["size"] == 0);
}

TEST_CASE("buffer: changing a buffer whose request is in flight leaves what is sent alone",
          "[buffer][http-client]") {
  TestServer server({{"buffers", kScript, {"/"}}});
  json result = get(server.port(), "/in-flight");
  CHECK(json::parse(result["sent"].get<std::string>()) == result["expected"]);
  CHECK(result["after"] == 5);  // the other task's clear and append took effect on its own bytes
}

TEST_CASE("buffer: bad arguments raise messages naming the function", "[buffer]") {
  TestServer server({{"buffers", kScript, {"/"}}});
  json errors = get(server.port(), "/errors");
  CHECK_THAT(errors["capacity"].get<std::string>(),
             Catch::Contains("buffer.new: capacity must be an integer 0..4294967296"));
  CHECK_THAT(errors["data"].get<std::string>(),
             Catch::Contains("buffer:append: data must be a string"));
  CHECK_THAT(errors["range"].get<std::string>(), Catch::Contains("buffer:append: i must be"));
  CHECK_THAT(errors["method"].get<std::string>(),
             Catch::Contains("buffer:append: call it as a method of a buffer"));
  CHECK_THAT(errors["body"].get<std::string>(),
             Catch::Contains("http.request: opts.body must be a string or a buffer"));
}
