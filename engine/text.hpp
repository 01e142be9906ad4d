// Plain string helpers shared by the engine and the bindings (HTTP-specific ones: http_util.hpp).
#pragma once

#include <string_view>

namespace depot {

// HTTP's optional whitespace between tokens (RFC 9110 §5.6.3).
inline constexpr std::string_view kSpaceAndTab = " \t";
// The same plus line ends: for lines read with their CR or LF still attached.
inline constexpr std::string_view kWhitespace = " \t\r\n";

// `text` without the leading and trailing characters that are in `characters`.
constexpr std::string_view trim(std::string_view text, std::string_view characters = kSpaceAndTab) {
  size_t start = text.find_first_not_of(characters);
  if (start == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(characters);
  return text.substr(start, end - start + 1);
}

}  // namespace depot
