// Fuzz target: the multipart parser fed one body in several ways (see targets.hpp).
#include <string>

#include "engine/multipart_parser.hpp"
#include "tests/fuzz/targets.hpp"
#include "tests/support/multipart_outcome.hpp"

namespace depot::fuzz {

void run_multipart_target(std::string_view input) {
  size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return;
  std::string_view first_line = input.substr(0, newline);
  std::string_view body = input.substr(newline + 1);
  std::string boundary = MultipartParser::boundary_from_content_type(first_line);
  if (boundary.empty()) boundary = std::string(first_line);
  testing::MultipartOutcome reference;
  try {
    reference = testing::parse_in_pieces(body, testing::whole(body), boundary);
  } catch (const MultipartError&) {
    return;  // the boundary itself is refused (empty, too long, CR or LF): nothing to compare
  }
  std::string expected = testing::describe(reference);
  if (!reference.sink_misuse.empty())
    throw FuzzFinding("multipart: events out of order:\n" + expected);
  auto compare = [&](const std::vector<size_t>& pieces, const char* how) {
    std::string got = testing::describe(testing::parse_in_pieces(body, pieces, boundary));
    if (got != expected) {
      throw FuzzFinding(std::string("multipart: fed ") + how +
                        " differs from fed whole.\nwhole:\n" + expected + how + ":\n" + got);
    }
  };
  compare(testing::single_bytes(body), "one byte at a time");
  // Around the delimiter's length is where a carried partial delimiter is decided.
  compare(testing::random_pieces(body, 1, boundary.size() + 6), "in random pieces");
  compare(testing::random_pieces(body, 2, 7), "in small random pieces");
}

}  // namespace depot::fuzz
