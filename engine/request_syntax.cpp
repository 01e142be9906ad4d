// Strict request-head checks (see request_syntax.hpp).
#include "engine/request_syntax.hpp"

#include <cstring>

#include "engine/exchange.hpp"
#include "engine/http_util.hpp"
#include "engine/text.hpp"

namespace depot::request_syntax {
namespace {

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// field-vchar, SP and HTAB (RFC 9110 §5.5): every byte except the other controls and DEL.
bool is_field_value_byte(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

constexpr RequestProblem kBareCr{400, "bare CR in the request head"};

// Splits the next line off `rest`; false (and `problem` set) if its ending is malformed.
bool next_line(std::string_view& rest, std::string_view& line,
               std::optional<RequestProblem>& problem) {
  size_t lf = rest.find('\n');
  if (lf == std::string_view::npos) {
    problem = RequestProblem{400, "incomplete request head"};
    return false;
  }
  line = rest.substr(0, lf);
  rest.remove_prefix(lf + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find('\r') != std::string_view::npos) {
    problem = kBareCr;
    return false;
  }
  return true;
}

std::optional<RequestProblem> check_request_line(std::string_view line) {
  size_t method_end = line.find(' ');
  if (method_end == 0 || method_end == std::string_view::npos ||
      !is_token(line.substr(0, method_end))) {
    return RequestProblem{400, "malformed request line"};
  }
  size_t target_begin = line.find_first_not_of(' ', method_end);
  size_t target_end =
      target_begin == std::string_view::npos ? target_begin : line.find(' ', target_begin);
  if (target_end == std::string_view::npos)
    return RequestProblem{400, "request line without HTTP version"};
  size_t version_begin = line.find_first_not_of(' ', target_end);
  if (version_begin == std::string_view::npos)
    return RequestProblem{400, "request line without HTTP version"};
  std::string_view version = line.substr(version_begin);
  bool well_formed = version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
                     version[5] <= '9' && version[6] == '.' && version[7] >= '0' &&
                     version[7] <= '9';
  if (!well_formed) return RequestProblem{400, "malformed HTTP version"};
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return RequestProblem{505, "HTTP version not supported"};
  return std::nullopt;
}

std::optional<RequestProblem> check_field_line(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') {
    return RequestProblem{400, "obsolete line folding (or a field line starting with whitespace)"};
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
    return RequestProblem{400, "malformed header field name"};
  }
  for (char c : line.substr(colon + 1)) {
    if (!is_field_value_byte(static_cast<unsigned char>(c))) {
      return RequestProblem{400, "control character in a header field value"};
    }
  }
  return std::nullopt;
}

// RFC 9112 §6.1, §6.3: the only coding Depot decodes is chunked, and it must be the only one.
// Empty list elements are skipped (RFC 9110 §5.6.1).
std::optional<RequestProblem> check_transfer_codings(std::string_view list, bool& chunked_seen) {
  while (true) {
    size_t comma = list.find(',');
    std::string_view coding = trim(list.substr(0, comma));
    if (!coding.empty()) {
      if (!is_token(coding)) return RequestProblem{400, "malformed Transfer-Encoding"};
      if (!http::iequals(coding, "chunked"))
        return RequestProblem{501, "unsupported transfer coding"};
      if (chunked_seen) return RequestProblem{400, "chunked applied more than once"};
      chunked_seen = true;
    }
    if (comma == std::string_view::npos) return std::nullopt;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::optional<RequestProblem> check_head(std::string_view raw) {
  size_t start = raw.find_first_not_of("\r\n");
  if (start == std::string_view::npos) return RequestProblem{400, "empty request head"};
  // The empty lines before the request line may still hide a bare CR.
  for (size_t i = 0; i < start; ++i) {
    if (raw[i] == '\r' && raw[i + 1] != '\n') return kBareCr;
  }
  std::string_view rest = raw.substr(start);
  std::string_view line;
  std::optional<RequestProblem> problem;
  if (!next_line(rest, line, problem)) return problem;
  if ((problem = check_request_line(line))) return problem;
  while (true) {
    if (!next_line(rest, line, problem)) return problem;
    if (line.empty()) break;
    if ((problem = check_field_line(line))) return problem;
  }
  if (!rest.empty()) return RequestProblem{400, "malformed request head"};
  return std::nullopt;
}

std::optional<RequestProblem> check_framing(const RequestHead& head) {
  size_t hosts = 0;
  size_t content_lengths = 0;
  bool has_transfer_encoding = false;
  bool chunked = false;
  for (const auto& [name, value] : head.headers) {
    if (name == "host") {
      ++hosts;
    } else if (name == "content-length") {
      ++content_lengths;
    } else if (name == "transfer-encoding") {
      has_transfer_encoding = true;
      if (auto problem = check_transfer_codings(value, chunked)) return problem;
    }
  }
  if (hosts > 1) return RequestProblem{400, "more than one Host header"};
  if (hosts == 0 && head.http_minor >= 1) return RequestProblem{400, "missing Host header"};
  if (has_transfer_encoding) {
    if (!chunked) return RequestProblem{400, "malformed Transfer-Encoding"};
    if (head.http_minor == 0)
      return RequestProblem{400, "Transfer-Encoding in an HTTP/1.0 request"};
    if (content_lengths > 0)
      return RequestProblem{400, "both Transfer-Encoding and Content-Length"};
  }
  if (content_lengths > 1) return RequestProblem{400, "more than one Content-Length"};
  if (head.path.find('\0') != std::string::npos)
    return RequestProblem{400, "NUL in the request path"};
  return std::nullopt;
}

}  // namespace depot::request_syntax
