// http_util: ranges, dates, percent-decoding, MIME types, header and status rules.
#include "engine/http_util.hpp"

#include <catch2/catch.hpp>

using namespace depot::http;

TEST_CASE("single byte ranges parse, multiple ranges fall back to the whole resource",
          "[http_util]") {
  ByteRange range{};
  CHECK(parse_range("bytes=0-99", 1000, range) == RangeResult::satisfiable);
  CHECK((range.first == 0 && range.last == 99));
  CHECK(parse_range("bytes=900-", 1000, range) == RangeResult::satisfiable);
  CHECK((range.first == 900 && range.last == 999));
  CHECK(parse_range("bytes=-100", 1000, range) == RangeResult::satisfiable);
  CHECK((range.first == 900 && range.last == 999));
  CHECK(parse_range("bytes=-5000", 1000, range) == RangeResult::satisfiable);
  CHECK(range.first == 0);
  CHECK(parse_range("bytes=500-2000", 1000, range) == RangeResult::satisfiable);
  CHECK(range.last == 999);
  CHECK(parse_range("bytes=1000-", 1000, range) == RangeResult::unsatisfiable);
  CHECK(parse_range("bytes=0-1,5-6", 1000, range) == RangeResult::none);
  CHECK(parse_range("bytes=9-1", 1000, range) == RangeResult::none);
  CHECK(parse_range("items=0-1", 1000, range) == RangeResult::none);
  CHECK(parse_range("bytes=x-1", 1000, range) == RangeResult::none);
}

TEST_CASE("HTTP dates round-trip", "[http_util]") {
  CHECK(http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK_FALSE(parse_http_date("yesterday").has_value());
}

TEST_CASE("percent-decoding keeps invalid escapes", "[http_util]") {
  CHECK(percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(percent_decode("100%") == "100%");
  CHECK(percent_decode("%zz%4") == "%zz%4");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("a+b") == "a+b");
}

TEST_CASE("MIME types come from the extension", "[http_util]") {
  CHECK(mime_type_for("test.json") == "application/json");
  CHECK(mime_type_for("notes.TXT") == "text/plain; charset=utf-8");
  CHECK(mime_type_for("dir.d/file") == "application/octet-stream");
  CHECK(mime_type_for("archive.tar.gz") == "application/gzip");
  CHECK(mime_type_for("noextension") == "application/octet-stream");
}

TEST_CASE("header field names are tokens, values have no CR, LF, NUL or other controls",
          "[http_util]") {
  CHECK(valid_field_name("X-Request-Id"));
  CHECK(valid_field_name("!#$%&'*+-.^_`|~09azAZ"));
  CHECK_FALSE(valid_field_name(""));
  CHECK_FALSE(valid_field_name("X Y"));
  CHECK_FALSE(valid_field_name("X:"));
  CHECK_FALSE(valid_field_name("X\r\nY"));
  CHECK_FALSE(valid_field_name(std::string("X\0Y", 3)));
  CHECK_FALSE(valid_field_name("caf\xc3\xa9"));
  CHECK(valid_field_value(""));
  CHECK(valid_field_value("text/plain; charset=utf-8"));
  CHECK(valid_field_value("tab\tand obs-text caf\xc3\xa9 \xff"));
  CHECK_FALSE(valid_field_value("a\r\nSet-Cookie: s=1"));
  CHECK_FALSE(valid_field_value("a\nb"));
  CHECK_FALSE(valid_field_value("a\rb"));
  CHECK_FALSE(valid_field_value(std::string("a\0b", 3)));
  CHECK_FALSE(
      valid_field_value("a\x01"
                        "b"));
  CHECK_FALSE(valid_field_value("a\x7f"));
}

TEST_CASE("final statuses are 200..599, 1xx, 204 and 304 and HEAD answers carry no content",
          "[http_util]") {
  CHECK_FALSE(valid_final_status(0));
  CHECK_FALSE(valid_final_status(100));
  CHECK_FALSE(valid_final_status(199));
  CHECK(valid_final_status(200));
  CHECK(valid_final_status(599));
  CHECK_FALSE(valid_final_status(600));
  CHECK(status_has_content(200));
  CHECK(status_has_content(404));
  CHECK_FALSE(status_has_content(100));
  CHECK_FALSE(status_has_content(204));
  CHECK_FALSE(status_has_content(304));
  CHECK(response_has_content("GET", 200));
  CHECK_FALSE(response_has_content("HEAD", 200));
  CHECK_FALSE(response_has_content("GET", 204));
  CHECK_FALSE(response_has_content("POST", 304));
}
