// http_util: ranges, dates, percent-decoding, MIME types.
#include <catch2/catch.hpp>

#include "engine/http_util.hpp"

using namespace depot::http;

TEST_CASE("single byte ranges parse; multiple ranges fall back to the whole resource", "[http_util]") {
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
