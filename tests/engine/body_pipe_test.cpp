// part:pipe and req:pipe over real HTTP: the bytes that reach the file are exactly those sent, at
// sizes around the writer's buffer and the socket read, with delimiters split across reads and
// look-alike delimiters inside the data; through an fs writer (C++) and through a Lua writer (the
// prelude's writer:write loop); a client that stops mid-part leaves no file; a limit refuses more.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "tests/support/digests.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/stalled_pool.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using depot::testing::open_fifo_for_writing;
using depot::testing::RawConnection;
using depot::testing::TestServer;
using depot::testing::xxh128_hex;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

namespace {

const char* const kRoutes = R"LUA(
local service = ...
local fs = require "fs"

-- A writer that is not an fs writer: part:pipe falls back to writer:write for it.
local function lua_writer(path)
  local chunks = {}
  return {
    write = function(_, chunk) chunks[#chunks + 1] = chunk; return true end,
    commit = function()
      local data = table.concat(chunks)
      assert(fs.write(path, data))
      return #data, nil
    end,
    abort = function() return true end,
  }
end

local outcomes = {}  -- what each pipe returned, by target name, for a client gone before the answer

-- Pipes `source` (a part or the request) into a writer of kind `req.query.writer` for `to`.
local function pipe(req, source)
  local to = req.query.to
  local writer = req.query.writer == "lua" and lua_writer(to) or assert(fs.writer(to, { hash = "xxh128" }))
  local bytes, err, origin = source:pipe(writer, { limit = tonumber(req.query.limit) })
  outcomes[to] = { bytes = bytes, error = err, origin = origin }
  if not bytes then
    writer:abort()
    return { error = err, origin = origin }
  end
  local size, digest = writer:commit()
  return { bytes = bytes, size = size, digest = digest }
end

service:post("/part", function(req)
  local answer = { fields = {} }
  for part in req:parts() do
    if part.name == "file" then
      answer.file = pipe(req, part)
    else
      answer.fields[part.name] = part:text()
    end
  end
  return answer
end)

service:post("/body", function(req) return pipe(req, req) end)

-- w:write before, between and after pipes into one fs writer: the file holds them in order.
service:post("/mixed", function(req)
  local writer = assert(fs.writer(req.query.to, { hash = "xxh128" }))
  assert(writer:write("<head>"))
  for part in req:parts() do
    assert(part:pipe(writer))
    assert(writer:write("<" .. part.name .. ">"))
  end
  local size, digest = writer:commit()
  return { size = size, digest = digest }
end)

-- A pipe whose writer the test can watch while the pool is held (tests/support/stalled_pool.hpp).
local held = {}
service:post("/held/open", function()
  held.writer = assert(fs.writer("held.bin"))
  return { open = true }
end)
service:post("/held", function(req)
  for part in req:parts() do
    if part.name == "file" then held.bytes = assert(part:pipe(held.writer)) end
  end
  assert(held.writer:commit())
  return { bytes = held.bytes }
end)
service:get("/held/bytes", function() return { bytes = held.writer and held.writer:bytes() or 0 } end)
service:get("/fifo", function() return assert(fs.read("fifo")) end)

service:get("/outcome", function(req) return outcomes[req.query.to] or { pending = true } end)
)LUA";

const std::string kBoundary = "pipe-test-boundary-0b8f2c";

std::string random_bytes(size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(generator() & 0xff);
  return bytes;
}

// Random data with look-alike delimiters: CR LF, "--" and growing prefixes of the boundary.
std::string tricky_bytes(size_t size, unsigned seed) {
  std::string bytes = random_bytes(size, seed);
  std::string delimiter = "\r\n--" + kBoundary;
  for (size_t at = 0, length = 1; at + length < size; at += 997, length = length % 40 + 1) {
    std::string piece = delimiter.substr(0, std::min(length, delimiter.size() - 1));
    bytes.replace(at, piece.size(), piece);
    bytes[at + piece.size()] = '\0';  // never the boundary's last character: no real delimiter
  }
  return bytes;
}

std::string multipart_body(const std::string& file) {
  return "--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\r\n" + file +
         "\r\n--" + kBoundary +
         "\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nyes\r\n--" + kBoundary +
         "--\r\n";
}

const std::string kMultipartType = "Content-Type: multipart/form-data; boundary=" + kBoundary;

std::string read_whole(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// Files in `directory`, temporary ones included.
size_t files_in(const stdfs::path& directory) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : stdfs::directory_iterator(directory)) ++count;
  return count;
}

}  // namespace

TEST_CASE("part:pipe stores exactly the bytes sent, at buffer and read edges", "[pipe]") {
  TestServer server("app", kRoutes);
  const size_t kib = 1024;
  for (size_t size : {size_t{0}, size_t{1}, size_t{2}, 64 * kib - 1, 64 * kib, 64 * kib + 1,
                      1024 * kib - 1, 1024 * kib, 1024 * kib + 1, 3 * 1024 * kib + 7}) {
    for (const char* writer : {"fs", "lua"}) {
      INFO(size << " bytes, " << writer << " writer");
      std::string file = tricky_bytes(size, static_cast<unsigned>(size));
      std::string to = std::string(writer) + std::to_string(size) + ".bin";
      auto response =
          http_request(server.port(), "POST", "/part?writer=" + std::string(writer) + "&to=" + to,
                       multipart_body(file), kMultipartType);
      REQUIRE(response.status == 200);
      auto answer = nlohmann::json::parse(response.body);
      CHECK(answer["file"]["bytes"] == size);
      CHECK(answer["fields"]["after"] == "yes");
      if (std::string(writer) == "fs") CHECK(answer["file"]["digest"] == xxh128_hex(file));
      CHECK(read_whole(server.data_dir() / to) == file);
    }
  }
}

TEST_CASE("w:write and part:pipe into one fs writer keep their order", "[pipe]") {
  TestServer server("app", kRoutes);
  const size_t kib = 1024;
  // Sizes around the writer's batch (1 MiB for a lone writer) so both pipes' chunks and the
  // copied bytes between them land in one batch, and across batches.
  for (size_t size : {size_t{1}, 64 * kib + 3, 1024 * kib - 5, 1024 * kib + 9}) {
    INFO(size << " bytes per part");
    std::string one = tricky_bytes(size, static_cast<unsigned>(size));
    std::string two = random_bytes(size + 17, static_cast<unsigned>(size) + 1);
    std::string body = "--" + kBoundary +
                       "\r\nContent-Disposition: form-data; name=\"one\"\r\n\r\n" + one + "\r\n--" +
                       kBoundary + "\r\nContent-Disposition: form-data; name=\"two\"\r\n\r\n" +
                       two + "\r\n--" + kBoundary + "--\r\n";
    std::string to = "mixed" + std::to_string(size) + ".bin";
    auto response = http_request(server.port(), "POST", "/mixed?to=" + to, body, kMultipartType);
    REQUIRE(response.status == 200);
    std::string expected = "<head>" + one + "<one>" + two + "<two>";
    auto answer = nlohmann::json::parse(response.body);
    CHECK(answer["size"] == expected.size());
    CHECK(answer["digest"] == xxh128_hex(expected));
    CHECK(read_whole(server.data_dir() / to) == expected);
  }
}

TEST_CASE("part:pipe finds a delimiter split across socket reads", "[pipe]") {
  TestServer server("app", kRoutes);
  std::string file = random_bytes(100 * 1024, 3);
  std::string body = multipart_body(file);
  size_t delimiter = body.find("\r\n\r\n") + 4 + file.size();
  REQUIRE(body.compare(delimiter, 4, "\r\n--") == 0);
  std::string head = "POST /part?to=split.bin HTTP/1.1\r\nHost: x\r\n" + kMultipartType +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  // Every split from the CR before the delimiter to the CR LF after it.
  for (size_t split = delimiter; split <= delimiter + kBoundary.size() + 6; ++split) {
    INFO("split at " << split - delimiter << " bytes into the delimiter");
    RawConnection connection(server.port());
    connection.send(head + body.substr(0, split));
    std::this_thread::sleep_for(20ms);  // the server reads the first piece on its own
    connection.send(body.substr(split));
    auto response = connection.read_response();
    REQUIRE(response);
    REQUIRE(response->status == 200);
    auto answer = nlohmann::json::parse(response->body);
    CHECK(answer["file"]["bytes"] == file.size());
    CHECK(answer["fields"]["after"] == "yes");
    CHECK(read_whole(server.data_dir() / "split.bin") == file);
  }
}

TEST_CASE("req:pipe stores exactly the body sent, with Content-Length or chunked", "[pipe]") {
  TestServer server("app", kRoutes);
  std::string body = random_bytes(2 * 1024 * 1024 + 3, 4);
  for (const char* writer : {"fs", "lua"}) {
    INFO(writer << " writer");
    std::string to = std::string("body-") + writer + ".bin";
    auto response = http_request(server.port(), "POST",
                                 "/body?writer=" + std::string(writer) + "&to=" + to, body);
    REQUIRE(response.status == 200);
    CHECK(nlohmann::json::parse(response.body)["bytes"] == body.size());
    CHECK(read_whole(server.data_dir() / to) == body);
  }
  RawConnection connection(server.port());
  connection.send(
      "POST /body?to=chunked.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string sent;
  for (size_t size : {1, 70000, 13, 200000}) {
    std::string chunk = random_bytes(size, static_cast<unsigned>(size));
    sent += chunk;
    std::ostringstream framed;
    framed << std::hex << size << "\r\n" << chunk << "\r\n";
    connection.send(framed.str());
  }
  connection.send("0\r\n\r\n");
  auto response = connection.read_response();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(nlohmann::json::parse(response->body)["digest"] == xxh128_hex(sent));
  CHECK(read_whole(server.data_dir() / "chunked.bin") == sent);
}

TEST_CASE("a pipe's limit refuses one byte more, leaving no file", "[pipe]") {
  TestServer server("app", kRoutes);
  std::string file = random_bytes(300 * 1024, 5);
  for (const char* writer : {"fs", "lua"}) {
    INFO(writer << " writer");
    std::string query = "writer=" + std::string(writer) + "&to=limited.bin&limit=";
    auto exact = http_request(server.port(), "POST", "/part?" + query + std::to_string(file.size()),
                              multipart_body(file), kMultipartType);
    REQUIRE(exact.status == 200);
    CHECK(nlohmann::json::parse(exact.body)["file"]["bytes"] == file.size());
    stdfs::remove(server.data_dir() / "limited.bin");
    auto over =
        http_request(server.port(), "POST", "/part?" + query + std::to_string(file.size() - 1),
                     multipart_body(file), kMultipartType);
    REQUIRE(over.status == 200);
    auto answer = nlohmann::json::parse(over.body);
    CHECK(answer["file"]["error"] == "too large");
    CHECK(answer["file"]["origin"] == "request");
    CHECK(answer["fields"]["after"] == "yes");  // the rest of the body still parses
    CHECK(!stdfs::exists(server.data_dir() / "limited.bin"));
  }
  // A body whose Content-Length is over the limit is refused before it is read.
  auto body = http_request(server.port(), "POST", "/body?to=big.bin&limit=10", file);
  CHECK(nlohmann::json::parse(body.body)["error"] == "too large");
  CHECK(!stdfs::exists(server.data_dir() / "big.bin"));
}

TEST_CASE("a client that stops mid-part leaves no file behind", "[pipe]") {
  TestServer server("app", kRoutes);
  stdfs::create_directories(server.data_dir() / "gone");
  std::string body = multipart_body(random_bytes(4 * 1024 * 1024, 6));
  {
    RawConnection connection(server.port());
    connection.send("POST /part?to=gone/file.bin HTTP/1.1\r\nHost: x\r\n" + kMultipartType +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                    body.substr(0, body.size() / 2));
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (files_in(server.data_dir() / "gone") == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    REQUIRE(files_in(server.data_dir() / "gone") == 1);  // the temporary file
  }                                                      // closes the socket halfway
  nlohmann::json outcome;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    std::this_thread::sleep_for(20ms);
    outcome =
        nlohmann::json::parse(http_request(server.port(), "GET", "/outcome?to=gone/file.bin").body);
  } while ((outcome.contains("pending") || files_in(server.data_dir() / "gone") != 0) &&
           std::chrono::steady_clock::now() < deadline);
  CHECK(outcome["error"] == "client closed the connection");
  CHECK(outcome["origin"] == "request");
  CHECK(files_in(server.data_dir() / "gone") == 0);
}

TEST_CASE("part:pipe stops taking the body while the writer's write waits", "[pipe]") {
  TestServer server("app", kRoutes, [](depot::Options& options) { options.blocking_threads = 1; });
  stdfs::path fifo = server.data_dir() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE(http_request(server.port(), "POST", "/held/open").status ==
          200);  // before the pool stops
  std::thread reader([&] { http_request(server.port(), "GET", "/fifo"); });
  int fd = open_fifo_for_writing(fifo);
  REQUIRE(fd >= 0);  // the only pool thread now sits in read()
  std::string file = random_bytes(16 * 1024 * 1024, 7);
  nlohmann::json stored;
  std::thread uploader([&] {
    stored = nlohmann::json::parse(
        http_request(server.port(), "POST", "/held", multipart_body(file), kMultipartType).body);
  });
  auto taken = [&] {
    return nlohmann::json::parse(http_request(server.port(), "GET", "/held/bytes").body)["bytes"]
        .get<size_t>();
  };
  for (int attempt = 0; attempt < 500 && taken() < 1024 * 1024; ++attempt)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(300ms);
  // A lone writer's buffers are 1 MiB: one waits in the pool's queue, the next part-fills, and
  // the pipe then leaves the rest of the 16 MiB in the client's socket.
  size_t held = taken();
  CHECK(held >= 1024 * 1024);
  CHECK(held < 2 * 1024 * 1024);
  CHECK(::write(fd, "go", 2) == 2);
  ::close(fd);
  reader.join();
  uploader.join();
  CHECK(stored["bytes"] == file.size());
  CHECK(read_whole(server.data_dir() / "held.bin") == file);
}
