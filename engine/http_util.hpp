// Small HTTP helpers shared by the connection layer and the Lua request API.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace depot::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string_view reason_phrase(int status);
// The IMF-fixdate for `now`, cached per second and thread.
std::string_view date_header(time_t now);
std::string http_date(time_t when);
// Parses an IMF-fixdate; nullopt if malformed.
std::optional<time_t> parse_http_date(std::string_view text);

// RFC 9110 §5.1: a field name is a non-empty token (letters, digits and !#$%&'*+-.^_`|~).
bool valid_field_name(std::string_view name);
// RFC 9110 §5.5: a field value is visible characters, SP, HTAB and obs-text (bytes >= 0x80).
// Never CR, LF, NUL or another control: a line break would end the header and let the rest of
// the value be read as a header of its own (response splitting).
bool valid_field_value(std::string_view value);
// The statuses a response may finally answer with: 200..599 (1xx are interim, sent by the engine).
bool valid_final_status(int status);
// RFC 9110 §6.4.1, RFC 9112 §6.3: answers with these statuses carry no content, nor the framing
// headers (Content-Length, Transfer-Encoding) that would announce some.
bool status_has_content(int status);
// Whether content bytes follow the head: never for HEAD (its head describes what a GET would get)
// nor for a status without content. The one place this rule is decided.
bool response_has_content(std::string_view method, int status);

bool iequals(std::string_view a, std::string_view b);
std::string lowercase(std::string_view text);
// Decodes %XX escapes (and '+' as space when `plus_is_space`); invalid escapes are kept as is.
std::string percent_decode(std::string_view text, bool plus_is_space = false);

// One satisfiable byte range of a resource of `size` bytes.
struct ByteRange {
  uint64_t first;
  uint64_t last;  // inclusive
};
enum class RangeResult { none, satisfiable, unsatisfiable };
// Parses a Range header for a single range ("bytes=0-99", "bytes=100-", "bytes=-500"). Multiple
// ranges are answered with the whole resource (RangeResult::none), which RFC 9110 allows.
RangeResult parse_range(std::string_view header, uint64_t size, ByteRange& range);

// A MIME type guessed from a file name's extension, "application/octet-stream" when unknown.
std::string_view mime_type_for(std::string_view filename);

}  // namespace depot::http
