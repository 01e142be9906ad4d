// MultipartParser: every body is fed whole, one byte at a time and in random piece sizes (several
// seeds), and every way must produce the same events or the same error. A 64 MiB part streamed
// in 64 KiB pieces checks that data passes through without being buffered.
#include "engine/multipart_parser.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/multipart_outcome.hpp"

using depot::MultipartError;
using depot::MultipartParser;
using depot::MultipartPart;
using depot::testing::describe;
using depot::testing::parse_in_pieces;
using depot::testing::random_pieces;
using depot::testing::single_bytes;
using depot::testing::whole;
using Outcome = depot::testing::MultipartOutcome;

namespace {

const std::string kBoundary = "----DepotFormBoundary7MA4YWxk";

// Parses `body` whole, byte by byte and in random pieces (small ones, around the delimiter's
// length, and large ones), checks that all agree, and returns the outcome.
Outcome parse_every_way(std::string_view body, const std::string& boundary = kBoundary) {
  Outcome reference = parse_in_pieces(body, whole(body), boundary);
  std::string expected = describe(reference);
  CHECK(reference.sink_misuse.empty());
  {
    INFO("fed one byte at a time");
    CHECK(describe(parse_in_pieces(body, single_bytes(body), boundary)) == expected);
  }
  for (unsigned seed = 1; seed <= 6; ++seed) {
    for (size_t largest : {size_t{7}, boundary.size() + 6, size_t{300}}) {
      INFO("fed in random pieces of 1.." << largest << " bytes, seed " << seed);
      CHECK(describe(parse_in_pieces(body, random_pieces(body, seed, largest), boundary)) ==
            expected);
    }
  }
  return reference;
}

std::string delimiter() {
  return "\r\n--" + kBoundary;
}
std::string first_delimiter() {
  return "--" + kBoundary;
}
std::string closing() {
  return "\r\n--" + kBoundary + "--\r\n";
}

std::string field(std::string_view name, std::string_view value) {
  return "\r\nContent-Disposition: form-data; name=\"" + std::string(name) + "\"\r\n\r\n" +
         std::string(value);
}

std::string header_value(const MultipartPart& part, std::string_view name) {
  for (auto& [header, value] : part.headers) {
    if (header == name) return value;
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("a single file part", "[multipart]") {
  std::string body = first_delimiter() +
                     "\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"notes.txt\""
                     "\r\nContent-Type: text/plain\r\n\r\nhello, multipart\n" +
                     closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  CHECK(outcome.finished);
  REQUIRE(outcome.parts.size() == 1);
  const MultipartPart& part = outcome.parts[0].part;
  CHECK(part.name == "upload");
  CHECK(part.filename == "notes.txt");
  CHECK(part.has_filename);
  CHECK(part.content_type == "text/plain");
  CHECK(outcome.parts[0].data == "hello, multipart\n");
  REQUIRE(part.headers.size() == 2);
  CHECK(part.headers[0].first == "content-disposition");
  CHECK(part.headers[1] == std::make_pair(std::string("content-type"), std::string("text/plain")));
}

TEST_CASE("several parts: fields and files, header names lower-cased and values trimmed",
          "[multipart]") {
  const std::string binary("\xff\xd8\xff\x00jpeg", 8);  // with a NUL byte
  std::string body = first_delimiter() + field("title", "A title") + delimiter() +
                     "\r\nCONTENT-DISPOSITION:   form-data; name=photo; filename=cat.jpg   "
                     "\r\ncontent-type:image/jpeg\t\r\nX-Extra: one\r\n\r\n" +
                     binary + delimiter() + field("count", "3") + delimiter() +
                     "\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.pdf\""
                     "\r\n\r\n%PDF-1.7\r\n" +
                     closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  CHECK(outcome.finished);
  REQUIRE(outcome.parts.size() == 4);

  CHECK(outcome.parts[0].part.name == "title");
  CHECK_FALSE(outcome.parts[0].part.has_filename);
  CHECK(outcome.parts[0].part.filename.empty());
  CHECK(outcome.parts[0].part.content_type.empty());
  CHECK(outcome.parts[0].data == "A title");

  const MultipartPart& photo = outcome.parts[1].part;
  CHECK(photo.name == "photo");
  CHECK(photo.filename == "cat.jpg");
  CHECK(photo.has_filename);
  CHECK(photo.content_type == "image/jpeg");
  CHECK(header_value(photo, "content-disposition") == "form-data; name=photo; filename=cat.jpg");
  CHECK(header_value(photo, "x-extra") == "one");
  CHECK(outcome.parts[1].data == binary);

  CHECK(outcome.parts[2].part.name == "count");
  CHECK(outcome.parts[2].data == "3");

  CHECK(outcome.parts[3].part.filename == "a.pdf");
  CHECK(outcome.parts[3].part.content_type.empty());
  CHECK(outcome.parts[3].data == "%PDF-1.7\r\n");
}

TEST_CASE("parts with empty data", "[multipart]") {
  std::string body = first_delimiter() + field("empty", "") + delimiter() +
                     "\r\nContent-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n" +
                     delimiter() + field("last", "") + closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 3);
  CHECK(outcome.parts[0].part.name == "empty");
  CHECK(outcome.parts[0].data.empty());
  CHECK(outcome.parts[1].part.has_filename);
  CHECK(outcome.parts[1].part.filename.empty());
  CHECK(outcome.parts[1].data.empty());
  CHECK(outcome.parts[2].data.empty());
}

TEST_CASE("a part without headers", "[multipart]") {
  std::string body = first_delimiter() + "\r\n\r\nanonymous" + closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 1);
  CHECK(outcome.parts[0].part.headers.empty());
  CHECK(outcome.parts[0].part.name.empty());
  CHECK(outcome.parts[0].data == "anonymous");
}

TEST_CASE("data that nearly contains a delimiter is passed through intact", "[multipart]") {
  const std::string almost = kBoundary.substr(0, kBoundary.size() - 1);  // one byte short
  std::string near_misses = "start\r\n--" + almost + "X\r\n--" + kBoundary.substr(0, 5) +
                            "\r\n-\r\n--\r\n\r\n--" + almost + "\r\n\r\n\r\n--" + almost +
                            "\r\n-\r";  // the CR before the delimiter is data too
  std::string without_crlf = "x--" + kBoundary + " (no CRLF)\n--" + kBoundary + " (LF only)\r--" +
                             kBoundary + " (CR only) --" + kBoundary + "-- (closing, no CRLF)";
  std::string body = first_delimiter() + field("near", near_misses) + delimiter() +
                     field("without-crlf", without_crlf) + closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 2);
  CHECK(outcome.parts[0].data == near_misses);
  CHECK(outcome.parts[1].data == without_crlf);
}

TEST_CASE("CRLF and CR at the end of part data belong to the data", "[multipart]") {
  std::string body = first_delimiter() + field("crlf", "line\r\n") + delimiter() +
                     field("two", "\r\n\r\n") + delimiter() + field("cr", "ends in CR\r") +
                     closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 3);
  CHECK(outcome.parts[0].data == "line\r\n");
  CHECK(outcome.parts[1].data == "\r\n\r\n");
  CHECK(outcome.parts[2].data == "ends in CR\r");
}

TEST_CASE("whitespace between a boundary and its CRLF is allowed", "[multipart]") {
  std::string body = first_delimiter() + " \t " + field("a", "1") + delimiter() + "\t" +
                     field("b", "2") + closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 2);
  CHECK(outcome.parts[1].data == "2");
}

TEST_CASE("quoted parameters: spaces, escaped quotes, semicolons", "[multipart]") {
  std::string body =
      first_delimiter() +
      "\r\nContent-Disposition: form-data; name=\"my field\"; "
      "filename=\"my \\\"quoted\\\" file; v2.txt\"\r\n\r\nx" +
      delimiter() +
      "\r\nContent-Disposition: form-data; filename=\"C:\\\\dir\\\\a.txt\"; NAME=\"second\"\r\n"
      "\r\ny" +
      closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 2);
  CHECK(outcome.parts[0].part.name == "my field");
  CHECK(outcome.parts[0].part.filename == "my \"quoted\" file; v2.txt");
  CHECK(outcome.parts[1].part.name == "second");
  CHECK(outcome.parts[1].part.filename == "C:\\dir\\a.txt");
}

TEST_CASE("filename*=UTF-8''... is percent-decoded and wins over filename", "[multipart]") {
  std::string body =
      first_delimiter() +
      "\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''%C3%A9.txt\r\n\r\n1" +
      delimiter() +
      "\r\nContent-Disposition: form-data; name=\"g\"; filename=\"e.txt\"; "
      "filename*=UTF-8''caf%C3%A9%20menu.txt\r\n\r\n2" +
      delimiter() +
      "\r\nContent-Disposition: form-data; name=\"h\"; filename*=utf-8'fr'%C3%A9t%C3%A9+1.txt; "
      "filename=\"ete.txt\"\r\n\r\n3" +
      closing();
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  REQUIRE(outcome.parts.size() == 3);
  CHECK(outcome.parts[0].part.filename == "\xc3\xa9.txt");
  CHECK(outcome.parts[0].part.has_filename);
  CHECK(outcome.parts[1].part.filename == "caf\xc3\xa9 menu.txt");
  CHECK(outcome.parts[2].part.filename == "\xc3\xa9t\xc3\xa9+1.txt");
}

TEST_CASE("the preamble and the epilogue are ignored", "[multipart]") {
  std::string preamble = "This is a preamble.\r\nIt mentions --" + kBoundary.substr(0, 8) +
                         " and -" + kBoundary + " but no delimiter.\r\n";
  std::string epilogue = "epilogue " + delimiter() + "\r\n" + field("ghost", "boo") + closing();
  std::string body = preamble + "--" + kBoundary + field("real", "yes") + closing() + epilogue;
  Outcome outcome = parse_every_way(body);
  REQUIRE(outcome.error.empty());
  CHECK(outcome.finished);
  REQUIRE(outcome.parts.size() == 1);
  CHECK(outcome.parts[0].part.name == "real");
  CHECK(outcome.parts[0].data == "yes");
}

TEST_CASE("a body of only the closing delimiter has no parts", "[multipart]") {
  Outcome outcome = parse_every_way("--" + kBoundary + "--");
  CHECK(outcome.error.empty());
  CHECK(outcome.finished);
  CHECK(outcome.parts.empty());
}

TEST_CASE("a body that ends before the closing delimiter makes finish() throw", "[multipart]") {
  const std::string expected = "multipart: body ended before the closing boundary";
  std::string complete = "preamble\r\n" + first_delimiter() + field("a", "1") + delimiter() +
                         field("b", "2") + closing();
  size_t closing_at = complete.rfind(closing());
  for (size_t cut : {size_t{0}, size_t{5}, size_t{12}, complete.find("Content-Disposition"),
                     complete.find("\"b\"") + 2, closing_at, closing_at + 2, closing_at + 4,
                     closing_at + closing().size() - 4}) {
    INFO("body cut after " << cut << " bytes");
    Outcome outcome = parse_every_way(std::string_view(complete).substr(0, cut));
    CHECK_FALSE(outcome.finished);
    CHECK(outcome.error == expected);
    CHECK(outcome.sink_misuse.empty());
  }
  MultipartParser parser(kBoundary);
  CHECK_FALSE(parser.finished());
  CHECK_THROWS_AS(parser.finish(), MultipartError);
}

TEST_CASE("part headers larger than 16 KiB are rejected", "[multipart]") {
  std::string huge_header = "X-Padding: " + std::string(16 * 1024, 'p') + "\r\n";
  std::string body = first_delimiter() + field("ok", "fine") + delimiter() + "\r\n" + huge_header +
                     "Content-Disposition: form-data; name=\"big\"\r\n\r\ndata" + closing();
  Outcome outcome = parse_in_pieces(body, whole(body), kBoundary);
  CHECK(outcome.error == "multipart: part headers exceed 16384 bytes");
  for (const auto& sizes :
       {single_bytes(body), random_pieces(body, 1, 300), random_pieces(body, 2, 5000)}) {
    CHECK(describe(parse_in_pieces(body, sizes, kBoundary)) == describe(outcome));
  }

  // Headers that never end are rejected as soon as they pass the limit, not at the end.
  std::string endless = first_delimiter() + "\r\nX-Endless: " + std::string(64 * 1024, 'e');
  Outcome cut = parse_in_pieces(endless, random_pieces(endless, 3, 1000), kBoundary);
  CHECK(cut.error == "multipart: part headers exceed 16384 bytes");

  // Just under the limit is fine.
  std::string fitting = first_delimiter() + "\r\nX-Padding: " + std::string(16 * 1024 - 64, 'p') +
                        "\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1" + closing();
  CHECK(parse_in_pieces(fitting, random_pieces(fitting, 4, 700), kBoundary).error.empty());
}

TEST_CASE("malformed bodies throw MultipartError", "[multipart]") {
  std::string no_colon = first_delimiter() + "\r\nthis is not a header\r\n\r\ndata" + closing();
  Outcome outcome = parse_every_way(no_colon);
  CHECK_FALSE(outcome.error.empty());
  CHECK(outcome.error.rfind("multipart: ", 0) == 0);

  std::string bad_boundary_line = first_delimiter() + "junk\r\n" + field("a", "1") + closing();
  outcome = parse_every_way(bad_boundary_line);
  CHECK_FALSE(outcome.error.empty());
  CHECK(outcome.parts.empty());
}

TEST_CASE("boundary_from_content_type", "[multipart]") {
  auto boundary = &MultipartParser::boundary_from_content_type;
  CHECK(boundary("multipart/form-data; boundary=abc") == "abc");
  CHECK(boundary("multipart/form-data;boundary=abc") == "abc");
  CHECK(boundary("multipart/form-data; boundary=\"a b:c\"") == "a b:c");
  CHECK(boundary("Multipart/Form-Data; BOUNDARY=XyZ") == "XyZ");
  CHECK(boundary("multipart/form-data; charset=utf-8; boundary=----xyz; foo=bar") == "----xyz");
  CHECK(boundary("multipart/form-data; note=\"boundary=fake; x\"; boundary=real") == "real");
  CHECK(boundary("multipart/form-data") == "");
  CHECK(boundary("multipart/form-data; charset=utf-8") == "");
  CHECK(boundary("multipart/mixed; boundary=abc") == "");
  CHECK(boundary("text/plain; boundary=abc") == "");
  CHECK(boundary("application/json") == "");
  CHECK(boundary("") == "");
}

TEST_CASE("a 64 MiB part streamed in 64 KiB pieces passes through unbuffered", "[multipart]") {
  constexpr size_t kPartBytes = size_t{64} << 20;
  constexpr size_t kPieceBytes = size_t{64} << 10;
  const std::string head = first_delimiter() +
                           "\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\""
                           "\r\nContent-Type: application/octet-stream\r\n\r\n";
  const std::string tail = closing();
  const size_t delimiter_size = delimiter().size();

  // The data repeats a pattern of prime length full of near-misses, so that pieces end inside
  // partial delimiters at many different offsets.
  std::string pattern;
  for (size_t cut = 1; pattern.size() < 900; cut = cut % (kBoundary.size() - 1) + 1) {
    pattern += "\r\n--" + kBoundary.substr(0, cut) + "\r" + std::to_string(cut) + "\n-";
  }
  pattern.resize(1021, '.');
  auto fill = [&](uint64_t data_offset, char* out, size_t count) {
    while (count > 0) {
      size_t from = data_offset % pattern.size();
      size_t take = std::min(count, pattern.size() - from);
      std::memcpy(out, pattern.data() + from, take);
      out += take, data_offset += take, count -= take;
    }
  };
  auto fnv1a = [](uint64_t hash, std::string_view data) {
    for (unsigned char c : data) hash = (hash ^ c) * 1099511628211ull;
    return hash;
  };

  struct CountingSink final : MultipartParser::Sink {
    std::string_view piece;  // the input of the feed() in progress
    uint64_t parts = 0, ends = 0, bytes = 0, checksum = 14695981039346656037ull;
    uint64_t bytes_not_from_piece = 0, largest_call = 0;
    decltype(fnv1a)* hash;
    void on_part_begin(MultipartPart part) override {
      ++parts;
      CHECK(part.filename == "big.bin");
    }
    void on_part_data(std::string_view data) override {
      bytes += data.size();
      checksum = (*hash)(checksum, data);
      largest_call = std::max<uint64_t>(largest_call, data.size());
      bool inside =
          data.data() >= piece.data() && data.data() + data.size() <= piece.data() + piece.size();
      if (!inside) bytes_not_from_piece += data.size();
    }
    void on_part_end() override { ++ends; }
  } sink;
  sink.hash = &fnv1a;

  MultipartParser parser(kBoundary);
  const uint64_t body_size = head.size() + kPartBytes + tail.size();
  std::string piece(kPieceBytes, '\0');
  uint64_t expected_checksum = 14695981039346656037ull;
  uint64_t largest_lag = 0, largest_copy = 0;
  for (uint64_t offset = 0; offset < body_size; offset += kPieceBytes) {
    size_t size = static_cast<size_t>(std::min<uint64_t>(kPieceBytes, body_size - offset));
    for (size_t at = 0; at < size;) {  // the body's bytes [offset, offset + size)
      uint64_t position = offset + at;
      size_t take;
      if (position < head.size()) {
        take = std::min<uint64_t>(size - at, head.size() - position);
        std::memcpy(&piece[at], head.data() + position, take);
      } else if (position < head.size() + kPartBytes) {
        take = std::min<uint64_t>(size - at, head.size() + kPartBytes - position);
        fill(position - head.size(), &piece[at], take);
        expected_checksum = fnv1a(expected_checksum, std::string_view(&piece[at], take));
      } else {
        take = std::min<uint64_t>(size - at, body_size - position);
        std::memcpy(&piece[at], tail.data() + (position - head.size() - kPartBytes), take);
      }
      at += take;
    }
    sink.piece = std::string_view(piece.data(), size);
    uint64_t copied_before = sink.bytes_not_from_piece;
    parser.feed(sink.piece, sink);
    largest_copy = std::max(largest_copy, sink.bytes_not_from_piece - copied_before);
    // Data fed so far that the sink has not seen yet is what the parser holds back.
    uint64_t data_fed = std::min<uint64_t>(
        kPartBytes, offset + size > head.size() ? offset + size - head.size() : 0);
    largest_lag = std::max(largest_lag, data_fed - sink.bytes);
  }
  REQUIRE_NOTHROW(parser.finish());
  CHECK(sink.parts == 1);
  CHECK(sink.ends == 1);
  CHECK(sink.bytes == kPartBytes);
  CHECK(sink.checksum == expected_checksum);
  // Held back at most a partial delimiter, and copied at most that: the rest came as views.
  CHECK(largest_lag < delimiter_size);
  CHECK(largest_copy < delimiter_size);
  CHECK(sink.largest_call <= kPieceBytes + delimiter_size);
}

TEST_CASE("a part trickled in pieces shorter than the delimiter is not held back", "[multipart]") {
  const std::string head = first_delimiter() + field("slow", "");
  // CRs all through the data, so that many pieces end in what could start a delimiter.
  std::string data;
  for (int i = 0; data.size() < 16 * 1024; ++i) data += "\r\n-" + std::to_string(i) + "\r";
  const std::string body = head + data + closing();
  const size_t delimiter_size = delimiter().size();
  for (unsigned seed = 1; seed <= 3; ++seed) {
    INFO("pieces of 1.." << delimiter_size - 1 << " bytes, seed " << seed);
    struct CountingSink final : MultipartParser::Sink {
      size_t bytes = 0;
      void on_part_begin(MultipartPart) override {}
      void on_part_data(std::string_view piece) override { bytes += piece.size(); }
      void on_part_end() override {}
    } sink;
    MultipartParser parser(kBoundary);
    size_t offset = 0, largest_lag = 0;
    for (size_t size : random_pieces(body, seed, delimiter_size - 1)) {
      parser.feed(std::string_view(body).substr(offset, size), sink);
      offset += size;
      size_t data_fed = std::min(data.size(), offset > head.size() ? offset - head.size() : 0);
      largest_lag = std::max(largest_lag, data_fed - sink.bytes);
    }
    CHECK(parser.finished());
    CHECK(sink.bytes == data.size());
    CHECK(largest_lag < delimiter_size);
  }
}
