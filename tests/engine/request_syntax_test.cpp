// request_syntax's rules on raw heads and parsed heads, without a server.
#include "engine/request_syntax.hpp"

#include <catch2/catch.hpp>

#include "engine/exchange.hpp"

using depot::RequestHead;
namespace request_syntax = depot::request_syntax;

namespace {
int head_status(std::string_view raw) {
  auto problem = request_syntax::check_head(raw);
  return problem ? problem->status : 0;
}

RequestHead head_with(unsigned minor, depot::http::Headers headers, std::string path = "/") {
  RequestHead head;
  head.http_minor = minor;
  head.headers = std::move(headers);
  head.path = std::move(path);
  return head;
}

int framing_status(const RequestHead& head) {
  auto problem = request_syntax::check_framing(head);
  return problem ? problem->status : 0;
}
}  // namespace

TEST_CASE("request lines", "[request_syntax]") {
  CHECK(head_status("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
  CHECK(head_status("\r\n\r\nGET / HTTP/1.0\n\n") == 0);
  CHECK(head_status("GET / HTTX/1.1\r\n\r\n") == 400);
  CHECK(head_status("GET / http/1.1\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1 \r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/2.0\r\n\r\n") == 505);
  CHECK(head_status("GET / HTTP/0.9\r\n\r\n") == 505);
  CHECK(head_status("GET /\r\n\r\n") == 400);
  CHECK(head_status("GET\r\n\r\n") == 400);
  CHECK(head_status("G(T / HTTP/1.1\r\n\r\n") == 400);
}

TEST_CASE("field lines and line endings", "[request_syntax]") {
  CHECK(head_status("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1\r\nA b: c\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1\r\nA : c\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1\r\n: c\r\n\r\n") == 400);
  CHECK(head_status(std::string_view("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 26)) == 400);
  CHECK(head_status("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1\r\nA: b\r\n\rX") == 400);
  CHECK(head_status("\rGET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(head_status("GET / HTTP/1.1\r\nA:\tb\xff\r\nB:\r\n\r\n") == 0);
}

TEST_CASE("framing and Host", "[request_syntax]") {
  CHECK(framing_status(head_with(1, {{"host", "x"}})) == 0);
  CHECK(framing_status(head_with(0, {})) == 0);
  CHECK(framing_status(head_with(1, {})) == 400);
  CHECK(framing_status(head_with(1, {{"host", "x"}, {"host", "x"}})) == 400);
  CHECK(framing_status(head_with(1, {{"host", "x"}, {"transfer-encoding", " chunked ,"}})) == 0);
  CHECK(framing_status(head_with(1, {{"host", "x"}, {"transfer-encoding", "gzip, chunked"}})) ==
        501);
  CHECK(framing_status(head_with(1, {{"host", "x"}, {"transfer-encoding", ""}})) == 400);
  CHECK(framing_status(head_with(
            1, {{"host", "x"}, {"transfer-encoding", "chunked"}, {"content-length", "1"}})) == 400);
  CHECK(framing_status(head_with(0, {{"transfer-encoding", "chunked"}})) == 400);
  CHECK(framing_status(head_with(1, {{"host", "x"}}, std::string("/a\0b", 4))) == 400);
}
