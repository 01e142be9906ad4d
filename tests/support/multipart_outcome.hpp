// Recording what a MultipartParser makes of a body fed in given pieces, so that ways of splitting
// the same body can be compared: shared by the parser's unit tests and its fuzz harness.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/multipart_parser.hpp"

namespace depot::testing {

struct ParsedPart {
  MultipartPart part;
  std::string data;
};

// Everything a parse produced, with the data pieces of each part joined (how a body is split
// changes the pieces, never their concatenation).
struct MultipartOutcome {
  std::vector<ParsedPart> parts;
  bool finished = false;
  std::string error;        // what() of the MultipartError from feed() or finish(); "" if none
  std::string sink_misuse;  // events out of order (data or end outside a part, begin inside one)
};

// A readable form of an outcome: comparing two of them shows where they differ.
std::string describe(const MultipartOutcome& outcome);

// Feeds `body` in pieces of `piece_sizes` (which add up to its size), then finishes.
MultipartOutcome parse_in_pieces(std::string_view body, const std::vector<size_t>& piece_sizes,
                                 const std::string& boundary);

// Piece sizes: the whole body at once, one byte at a time, random sizes of 1..largest.
std::vector<size_t> whole(std::string_view body);
std::vector<size_t> single_bytes(std::string_view body);
std::vector<size_t> random_pieces(std::string_view body, unsigned seed, size_t largest);

}  // namespace depot::testing
