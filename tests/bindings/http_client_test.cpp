// The `http` module (bindings/http_client*.cpp) end to end: one embedded server with two
// services — a stub upstream and a client whose routes call the upstream through http.request —
// on ONE worker thread, so every call is also a handler calling its own server without blocking.
#include "tests/support/http_client.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <thread>

#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::TestServer;
using namespace std::chrono_literals;

namespace {

const char* const kUpstream = R"LUA(
local depot = require "depot"
local crypto = require "crypto"
local service = ...
local hits = {}

service:get("/json", function() return { hello = "world", list = { 1, 2, 3 } } end)
service:any("/echo", function(req)
  return {
    method = req.method, body = req:body(), query = req.query.q,
    token = req:header("x-token"), content_type = req:header("content-type"),
  }
end)
-- 503 until the `fail` first calls for one key are spent, then 200; /hits tells how many calls came.
service:get("/flaky/:key", function(req)
  local key = req.params.key
  hits[key] = (hits[key] or 0) + 1
  if hits[key] <= tonumber(req.query.fail) then return 503, { busy = true } end
  return { hits = hits[key] }
end)
service:get("/hits/:key", function(req) return { hits = hits[req.params.key] or 0 } end)
service:get("/sleep", function(req)
  depot.sleep(tonumber(req.query.s))
  return "slept"
end)
service:get("/bytes", function(req)
  local size, pattern = tonumber(req.query.n), "0123456789abcdef"
  local status = tonumber(req.query.status) or 200
  return status, string.rep(pattern, math.floor(size / 16)) .. pattern:sub(1, size % 16)
end)
service:post("/digest", function(req)
  local digest, total = crypto.sha256_stream(), 0
  while true do
    local chunk = req:read()
    if not chunk then break end
    digest:update(chunk)
    total = total + #chunk
  end
  return { bytes = total, sha256 = digest:hexfinal() }
end)
service:get("/redirect", function() return 302, "moved", { Location = "/upstream/json" } end)
service:get("/loop", function() return 302, "again", { Location = "/upstream/loop" } end)
)LUA";

const char* const kClient = R"LUA(
local http = require "http"
local json = require "json"
local jobs = require "jobs"
local depot = require "depot"
local fs = require "fs"
local crypto = require "crypto"
local service = ...

local function upstream(req, path) return "http://" .. req:header("host") .. "/upstream" .. path end

service:get("/get-json", function(req)
  local res = assert(http.get(upstream(req, "/json"), { headers = { ["X-Token"] = "secret" } }))
  return { status = res.status, content_type = res.headers["content-type"], value = json.decode(res.body),
           attempts = res.attempts }
end)
service:get("/post-json", function(req)
  local sent = { name = "depot", n = 42, nested = { ok = true } }
  local res = assert(http.post(upstream(req, "/echo?q=1"), json.encode(sent), {
    headers = { ["Content-Type"] = "application/json", ["X-Token"] = "t0k" } }))
  local echoed = json.decode(res.body)
  return { status = res.status, echoed = echoed, round_trip = json.decode(echoed.body) }
end)
service:get("/put-plain", function(req)
  local res = assert(http.request("put", upstream(req, "/echo"), { body = "plain body" }))
  return json.decode(res.body)
end)
service:get("/retry", function(req)
  local started = depot.monotonic()
  local res = assert(http.get(upstream(req, "/flaky/" .. req.query.key .. "?fail=" .. req.query.fail), {
    retries = tonumber(req.query.retries), backoff = 0.05 }))
  local hits = json.decode(assert(http.get(upstream(req, "/hits/" .. req.query.key))).body).hits
  return { status = res.status, attempts = res.attempts, hits = hits, seconds = depot.monotonic() - started }
end)
service:get("/timeout", function(req)
  local started = depot.monotonic()
  local res, err, kind = http.get(upstream(req, "/sleep?s=1"), { timeout = 0.3 })
  return { failed = res == nil, err = err, kind = kind, seconds = depot.monotonic() - started }
end)
service:get("/closed", function(req)
  local res, err, kind = http.get("http://127.0.0.1:" .. req.query.port .. "/", { retries = 1, backoff = 0.01 })
  return { failed = res == nil, err = err, kind = kind }
end)
service:get("/download", function(req)
  local res, err, kind = http.get(upstream(req, "/bytes?n=" .. req.query.n .. "&status=" .. req.query.status),
    { output_file = req.query.to })
  if not res then return { err = err, kind = kind } end
  return { status = res.status, bytes = res.bytes, body = res.body }
end)
service:get("/upload", function(req)
  local path = req.query.from
  local res = assert(http.request("POST", upstream(req, "/digest"), { body_file = path }))
  local expected = crypto.hex(crypto.sha256(assert(fs.read(path, 64 * 1024 * 1024))))
  local got = json.decode(res.body)
  return { bytes = got.bytes, same_digest = got.sha256 == expected }
end)
service:get("/redirect", function(req)
  local followed = assert(http.get(upstream(req, "/redirect"), { follow_redirects = true }))
  local kept = assert(http.get(upstream(req, "/redirect")))
  local looping, err = http.get(upstream(req, "/loop"), { follow_redirects = true })
  return { followed_status = followed.status, followed_body = json.decode(followed.body),
           kept_status = kept.status, location = kept.headers["location"], kept_body = kept.body,
           loop_failed = looping == nil, loop_err = err }
end)
service:get("/too-big", function(req)
  local res, err, kind = http.get(upstream(req, "/bytes?n=5000"), { max_body = 1000 })
  return { failed = res == nil, err = err, kind = kind }
end)
service:get("/slow", function(req) return assert(http.get(upstream(req, "/sleep?s=0.5"))).body end)
-- A route of this service calling another route of this service, which calls the upstream.
service:get("/nested", function(req)
  local res = assert(http.get("http://" .. req:header("host") .. "/client/get-json"))
  return { status = res.status, inner = json.decode(res.body) }
end)
service:get("/from-timer", function(req)
  local url, result = upstream(req, "/json"), nil
  jobs.after(0, function()
    local res, err = http.get(url)
    result = res and json.decode(res.body).hello or err
    depot.notify("timer-request-done")
  end)
  depot.wait("timer-request-done", 5)
  return { result = result }
end)
service:get("/misuse", function(req)
  local outside = select(2, pcall(coroutine.wrap(function() return http.get(upstream(req, "/json")) end)))
  local typo = select(2, pcall(http.get, upstream(req, "/json"), { timout = 1 }))
  local both = select(2, pcall(http.request, "POST", upstream(req, "/echo"), { body = "x", body_file = "/x" }))
  local header = select(2, pcall(http.get, upstream(req, "/json"), { headers = { ["X-Bad"] = "a\r\nb: c" } }))
  return { outside = outside, typo = typo, both = both, header = header }
end)
service:get("/fire-and-forget", function(req)
  local url = upstream(req, "/sleep?s=30")
  jobs.after(0, function() http.get(url) end)
  return "started"
end)
)LUA";

const char* const kClientAfterReload = R"LUA(
local service = ...
service:get("/slow", function() return "new generation" end)
)LUA";

std::vector<TestServer::Service> upstream_and_client() {
  return {{"upstream", kUpstream, {"/upstream"}}, {"client", kClient, {"/client"}}};
}

nlohmann::json get_json(uint16_t port, const std::string& target) {
  auto response = http_request(port, "GET", target);
  INFO(target << " → " << response.status << " " << response.body);
  REQUIRE(response.status == 200);
  return nlohmann::json::parse(response.body);
}

// A port nothing listens on: bound, then closed.
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string pattern_bytes(size_t size) {
  const std::string pattern = "0123456789abcdef";
  std::string bytes;
  bytes.reserve(size);
  while (bytes.size() < size) bytes += pattern;
  bytes.resize(size);
  return bytes;
}

std::string file_contents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("http: GET and POST carry headers and bodies, JSON survives the round trip",
          "[http-client]") {
  TestServer server(upstream_and_client());
  auto got = get_json(server.port(), "/client/get-json");
  CHECK(got["status"] == 200);
  CHECK(got["content_type"] == "application/json");
  CHECK(got["value"] == nlohmann::json({{"hello", "world"}, {"list", {1, 2, 3}}}));
  CHECK(got["attempts"] == 1);

  auto posted = get_json(server.port(), "/client/post-json");
  CHECK(posted["status"] == 200);
  CHECK(posted["echoed"]["method"] == "POST");
  CHECK(posted["echoed"]["query"] == "1");
  CHECK(posted["echoed"]["token"] == "t0k");
  CHECK(posted["echoed"]["content_type"] == "application/json");
  CHECK(posted["round_trip"] ==
        nlohmann::json({{"name", "depot"}, {"n", 42}, {"nested", {{"ok", true}}}}));

  // Lower-case methods are upper-cased; a body sent without Content-Type goes unlabelled.
  auto put = get_json(server.port(), "/client/put-plain");
  CHECK(put["method"] == "PUT");
  CHECK(put["body"] == "plain body");
  CHECK_FALSE(put.contains("content_type"));
}

TEST_CASE("http: retries on 503 with backoff, counting upstream hits", "[http-client]") {
  TestServer server(upstream_and_client());
  auto recovered = get_json(server.port(), "/client/retry?key=a&fail=2&retries=3");
  CHECK(recovered["status"] == 200);
  CHECK(recovered["attempts"] == 3);
  CHECK(recovered["hits"] == 3);
  CHECK(recovered["seconds"].get<double>() >= 0.15);  // 0.05 + 0.1 of backoff

  // Out of retries: the last answer is returned as it is, not as an error.
  auto exhausted = get_json(server.port(), "/client/retry?key=b&fail=5&retries=1");
  CHECK(exhausted["status"] == 503);
  CHECK(exhausted["attempts"] == 2);
  CHECK(exhausted["hits"] == 2);

  auto unretried = get_json(server.port(), "/client/retry?key=c&fail=1&retries=0");
  CHECK(unretried["status"] == 503);
  CHECK(unretried["hits"] == 1);
}

TEST_CASE("http: a timeout and a refused connection return nil, a message and a kind",
          "[http-client]") {
  TestServer server(upstream_and_client());
  auto timed_out = get_json(server.port(), "/client/timeout");
  CHECK(timed_out["failed"] == true);
  CHECK(timed_out["kind"] == "timeout");
  CHECK(timed_out["err"].get<std::string>().rfind("http.request: ", 0) == 0);
  CHECK(timed_out["seconds"].get<double>() < 0.9);

  auto refused = get_json(server.port(), "/client/closed?port=" + std::to_string(closed_port()));
  CHECK(refused["failed"] == true);
  CHECK(refused["kind"] == "connect");
  CHECK(refused["err"].get<std::string>().rfind("http.request: ", 0) == 0);

  auto too_big = get_json(server.port(), "/client/too-big");
  CHECK(too_big["failed"] == true);
  CHECK(too_big["err"] == "http.request: response body larger than max_body (1000 bytes)");
}

TEST_CASE("http: output_file receives the body whole, and only for a 2xx answer", "[http-client]") {
  TestServer server(upstream_and_client());
  const size_t size = 5 * 1024 * 1024 + 321;  // several pool writes
  auto target = server.data_dir() / "download.bin";
  auto done = get_json(server.port(), "/client/download?status=200&n=" + std::to_string(size) +
                                          "&to=" + target.string());
  CHECK(done["status"] == 200);
  CHECK(done["bytes"] == size);
  CHECK(done["body"] == "");
  CHECK(file_contents(target) == pattern_bytes(size));
  for (const auto& entry : std::filesystem::directory_iterator(server.data_dir())) {
    CHECK(entry.path().filename() == "download.bin");  // no temporary file left behind
  }

  // An error answer is returned as the body; the file is left as it was.
  auto error_page =
      get_json(server.port(), "/client/download?status=404&n=10&to=" + target.string());
  CHECK(error_page["status"] == 404);
  CHECK(error_page["body"] == "0123456789");
  CHECK(std::filesystem::file_size(target) == size);

  auto unwritable =
      get_json(server.port(), "/client/download?status=200&n=10&to=/nonexistent-dir/x.bin");
  CHECK(unwritable["kind"] == "file");
}

TEST_CASE("http: body_file streams a request body from disk", "[http-client]") {
  TestServer server(upstream_and_client());
  auto source = server.data_dir() / "upload.bin";
  const size_t size = 3 * 1024 * 1024 + 123;
  {
    std::mt19937 random(7);
    std::string bytes(size, '\0');
    for (char& byte : bytes) byte = static_cast<char>(random());
    std::filesystem::create_directories(server.data_dir());
    std::ofstream(source, std::ios::binary) << bytes;
  }
  auto result = get_json(server.port(), "/client/upload?from=" + source.string());
  CHECK(result["bytes"] == size);
  CHECK(result["same_digest"] == true);
}

TEST_CASE("http: redirects are followed on request, at most five", "[http-client]") {
  TestServer server(upstream_and_client());
  auto result = get_json(server.port(), "/client/redirect");
  CHECK(result["followed_status"] == 200);
  CHECK(result["followed_body"]["hello"] == "world");
  CHECK(result["kept_status"] == 302);
  CHECK(result["location"] == "/upstream/json");
  CHECK(result["kept_body"] == "moved");
  CHECK(result["loop_failed"] == true);
  CHECK(result["loop_err"].get<std::string>().find("redirect") != std::string::npos);
}

TEST_CASE("http: twenty calls waiting on a 0.5 s upstream overlap on one thread", "[http-client]") {
  TestServer server(upstream_and_client());
  auto start = std::chrono::steady_clock::now();
  std::atomic<int> done{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&] {
      if (http_request(server.port(), "GET", "/client/slow").body == "slept") ++done;
    });
  }
  for (auto& client : clients) client.join();
  double elapsed = seconds_since(start);
  CHECK(done == 20);
  CHECK(elapsed >= 0.5);
  CHECK(elapsed < 1.5);  // one after the other: 10 s
}

TEST_CASE("http: a handler calls other routes of its own server on one worker thread",
          "[http-client]") {
  TestServer server(upstream_and_client());
  auto result = get_json(server.port(), "/client/nested");
  CHECK(result["status"] == 200);
  CHECK(result["inner"]["value"]["hello"] == "world");
}

TEST_CASE("http: timers and jobs may call out too", "[http-client]") {
  TestServer server(upstream_and_client());
  CHECK(get_json(server.port(), "/client/from-timer")["result"] == "world");
}

TEST_CASE("http: misuse raises, naming the function and the argument", "[http-client]") {
  TestServer server(upstream_and_client());
  auto result = get_json(server.port(), "/client/misuse");
  CHECK(result["outside"].get<std::string>().find("http.get: can only wait inside") !=
        std::string::npos);
  CHECK(result["typo"].get<std::string>().find("http.get: unknown option timout") !=
        std::string::npos);
  CHECK(result["both"].get<std::string>().find("opts.body and opts.body_file exclude each other") !=
        std::string::npos);
  CHECK(result["header"].get<std::string>().find(
            "contains CR, LF, NUL or another control character") != std::string::npos);
}

TEST_CASE("http: a reload leaves requests in flight to finish in the old generation",
          "[http-client]") {
  TestServer server(upstream_and_client());
  std::string old_answer;
  std::thread in_flight(
      [&] { old_answer = http_request(server.port(), "GET", "/client/slow").body; });
  std::this_thread::sleep_for(200ms);
  server.write_script("client", kClientAfterReload);
  REQUIRE(server.server().reload() == "");
  CHECK(http_request(server.port(), "GET", "/client/slow").body == "new generation");
  in_flight.join();
  CHECK(old_answer == "slept");
}

TEST_CASE("http: stopping the server with a transfer in flight is prompt and clean",
          "[http-client]") {
  auto start = std::chrono::steady_clock::now();
  {
    TestServer server(upstream_and_client(),
                      [](depot::Options& options) { options.drain_timeout = 1s; });
    CHECK(http_request(server.port(), "GET", "/client/fire-and-forget").body == "started");
    std::this_thread::sleep_for(200ms);  // the job's transfer is now waiting on the upstream
  }
  // The upstream's sleeping request holds the drain until drain_timeout; the job's transfer is
  // not waited for: the worker's multi removes it as the worker goes.
  CHECK(seconds_since(start) < 3);
}
