// static_file: the decisions of res:file (validators, conditional GET, Range, If-Range,
// Content-Disposition), without a file, a socket or Lua.
#include "engine/static_file.hpp"

#include <catch2/catch.hpp>

#include "engine/exchange.hpp"

using namespace depot;

namespace {
const static_file::FileFacts kFile{1000, {784111777, 5}};

RequestHead get(http::Headers headers, std::string method = "GET") {
  RequestHead head;
  head.method = std::move(method);
  head.headers = std::move(headers);
  return head;
}

static_file::Answer decide(const RequestHead& head, int status = 200) {
  return static_file::decide(head, kFile, {status, "text/plain", "", {{"X-Own", "1"}}});
}

const std::string* find(const static_file::Answer& answer, std::string_view name) {
  for (const auto& [key, value] : answer.headers) {
    if (key == name) return &value;
  }
  return nullptr;
}
}  // namespace

TEST_CASE("a plain GET is the whole file with its validators after the script's headers",
          "[static_file]") {
  static_file::Answer answer = decide(get({}));
  CHECK(answer.status == 200);
  CHECK(answer.send_body);
  CHECK((answer.offset == 0 && answer.length == 1000));
  REQUIRE(answer.headers.size() == 5);
  CHECK(answer.headers[0].first == "X-Own");
  CHECK(*find(answer, "ETag") == static_file::etag(kFile));
  CHECK(*find(answer, "Last-Modified") == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(*find(answer, "Accept-Ranges") == "bytes");
  CHECK(*find(answer, "Content-Type") == "text/plain");
  CHECK(find(answer, "Content-Disposition") == nullptr);
}

TEST_CASE("the ETag changes with the size and with the nanoseconds of the mtime", "[static_file]") {
  std::string tag = static_file::etag(kFile);
  CHECK(tag.front() == '"');
  CHECK(tag.back() == '"');
  CHECK(static_file::etag({1001, kFile.modified}) != tag);
  CHECK(static_file::etag({1000, {784111777, 6}}) != tag);
}

TEST_CASE("If-None-Match with the file's tag (or *) answers 304 without a body or Content-Type",
          "[static_file]") {
  std::string tag = static_file::etag(kFile);
  for (const std::string& header : {tag, "\"other\", " + tag, std::string("*")}) {
    static_file::Answer answer = decide(get({{"if-none-match", header}}));
    CHECK(answer.status == 304);
    CHECK_FALSE(answer.send_body);
    CHECK(find(answer, "Content-Type") == nullptr);
    CHECK(*find(answer, "ETag") == tag);
  }
  CHECK(decide(get({{"if-none-match", "\"other\""}})).status == 200);
  // Only safe methods are answered 304.
  CHECK(decide(get({{"if-none-match", tag}}, "POST")).status == 200);
  CHECK(decide(get({{"if-none-match", tag}}, "HEAD")).status == 304);
}

TEST_CASE("If-Modified-Since counts in whole seconds and yields to If-None-Match",
          "[static_file]") {
  CHECK(decide(get({{"if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"}})).status == 304);
  CHECK(decide(get({{"if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT"}})).status == 200);
  CHECK(decide(get({{"if-modified-since", "not a date"}})).status == 200);
  // RFC 9110 §13.1.3: with If-None-Match present, If-Modified-Since is ignored.
  CHECK(decide(get({{"if-none-match", "\"other\""},
                    {"if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"}}))
            .status == 200);
}

TEST_CASE("one satisfiable range is a 206 of that slice", "[static_file]") {
  static_file::Answer answer = decide(get({{"range", "bytes=100-199"}}));
  CHECK(answer.status == 206);
  CHECK(answer.send_body);
  CHECK((answer.offset == 100 && answer.length == 100));
  CHECK(*find(answer, "Content-Range") == "bytes 100-199/1000");
  answer = decide(get({{"range", "bytes=-10"}}));
  CHECK((answer.status == 206 && answer.offset == 990 && answer.length == 10));
}

TEST_CASE("an unsatisfiable range is a 416 naming the size, without a body", "[static_file]") {
  static_file::Answer answer = decide(get({{"range", "bytes=1000-"}}));
  CHECK(answer.status == 416);
  CHECK_FALSE(answer.send_body);
  CHECK(*find(answer, "Content-Range") == "bytes */1000");
}

TEST_CASE("a Range is ignored for several ranges, a stale If-Range or a status the script chose",
          "[static_file]") {
  CHECK(decide(get({{"range", "bytes=0-1,5-6"}})).status == 200);
  CHECK(decide(get({{"range", "bytes=0-1"}, {"if-range", "\"stale\""}})).status == 200);
  CHECK(decide(get({{"range", "bytes=0-1"}, {"if-range", static_file::etag(kFile)}})).status ==
        206);
  static_file::Answer answer = decide(get({{"range", "bytes=0-1"}}), 404);
  CHECK(answer.status == 404);
  CHECK(answer.length == 1000);
  CHECK(find(answer, "Content-Range") == nullptr);
}

TEST_CASE("a download name becomes an attachment with ASCII and UTF-8 names", "[static_file]") {
  // The quote and each byte of the é are replaced in the ASCII name.
  CHECK(static_file::content_disposition("a b\"\xc3\xa9.txt") ==
        "attachment; filename=\"a b___.txt\"; filename*=UTF-8''a%20b%22%C3%A9.txt");
  static_file::Answer answer = static_file::decide(get({{"if-none-match", "*"}}), kFile,
                                                   {200, "text/plain", "report.txt", {}});
  CHECK(answer.status == 304);  // also on a 304, as before
  CHECK(*find(answer, "Content-Disposition") ==
        "attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt");
}
