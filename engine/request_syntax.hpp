// The strict syntax and framing rules of a request head (RFC 9112 §2-§6, RFC 9110 §5), checked
// before any handler runs. libhttp-parser does the parsing, but Debian builds it without
// HTTP_PARSER_STRICT, and then it accepts "HTTX/1.1", any HTTP version, a bare CR as a line end,
// obs-fold continuation lines, spaces in field names and control characters in values; and it
// judges Transfer-Encoding only after the head is complete. A proxy in front of Depot that reads
// such a request differently would desynchronize the connection (request smuggling), so what the
// lenient parser lets through is refused here.
//
// Pure functions over bytes and parsed heads: no I/O, no state.
#pragma once

#include <optional>
#include <string_view>

namespace depot {

struct RequestHead;

// Why a request is refused: the status to answer with (400, 501 or 505) and a message for the
// error body.
struct RequestProblem {
  int status;
  std::string_view message;
};

namespace request_syntax {

// `raw`: the head as received, from its first byte through the LF of the empty line that ends it
// (empty lines before the request line are allowed). Checks the request line (method, target,
// exactly "HTTP/1.0" or "HTTP/1.1"), every line ending (LF or CRLF, never a bare CR) and every
// field line (a token name directly followed by ':', no obs-fold, no control characters).
std::optional<RequestProblem> check_head(std::string_view raw);

// The parsed head's framing and its Host: one Host on HTTP/1.1 and at most one on 1.0;
// Transfer-Encoding only on HTTP/1.1, never with Content-Length, and exactly "chunked" (any other
// coding is 501); no NUL in the decoded path.
std::optional<RequestProblem> check_framing(const RequestHead& head);

// RFC 9110 §5.6.2: 1*tchar.
bool is_token(std::string_view text);

}  // namespace request_syntax
}  // namespace depot
