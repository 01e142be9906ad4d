// HTTP helpers (see http_util.hpp).
#include "engine/http_util.hpp"

#include <cctype>
#include <cstring>

namespace depot::http {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "Unknown";
}

std::string http_date(time_t when) {
  tm parts;
  gmtime_r(&when, &parts);
  char buffer[40];
  size_t n = strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &parts);
  return std::string(buffer, n);
}

std::string_view date_header(time_t now) {
  thread_local time_t cached_second = 0;
  thread_local std::string cached;
  if (now != cached_second) {
    cached = http_date(now);
    cached_second = now;
  }
  return cached;
}

std::optional<time_t> parse_http_date(std::string_view text) {
  tm parts{};
  std::string copy(text);
  const char* end = strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &parts);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return timegm(&parts);
}

bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
    if (!token) return false;
  }
  return true;
}

bool valid_field_value(std::string_view value) {
  for (unsigned char c : value) {
    if (c < 0x20 ? c != '\t' : c == 0x7f) return false;
  }
  return true;
}

bool valid_final_status(int status) {
  return status >= 200 && status <= 599;
}

bool status_has_content(int status) {
  return status >= 200 && status != 204 && status != 304;
}

bool response_has_content(std::string_view method, int status) {
  return method != "HEAD" && status_has_content(status);
}

namespace {
// ASCII only, without the C locale's per-character call: header names are ASCII tokens.
char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}
}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int high = hex(text[i + 1]);
      int low = hex(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

RangeResult parse_range(std::string_view header, uint64_t size, ByteRange& range) {
  constexpr std::string_view prefix = "bytes=";
  if (header.size() <= prefix.size() || !iequals(header.substr(0, prefix.size()), prefix))
    return RangeResult::none;
  std::string_view spec = header.substr(prefix.size());
  if (spec.find(',') != std::string_view::npos) return RangeResult::none;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeResult::none;
  auto parse_number = [](std::string_view digits, uint64_t& value) {
    if (digits.empty() || digits.size() > 19) return false;
    value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  std::string_view first_text = spec.substr(0, dash);
  std::string_view last_text = spec.substr(dash + 1);
  uint64_t first = 0;
  uint64_t last = 0;
  if (first_text.empty()) {  // suffix range: the last N bytes
    uint64_t suffix;
    if (!parse_number(last_text, suffix)) return RangeResult::none;
    if (suffix == 0 || size == 0) return RangeResult::unsatisfiable;
    range.first = suffix >= size ? 0 : size - suffix;
    range.last = size - 1;
    return RangeResult::satisfiable;
  }
  if (!parse_number(first_text, first)) return RangeResult::none;
  if (last_text.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!parse_number(last_text, last) || last < first) {
    return RangeResult::none;
  }
  if (first >= size) return RangeResult::unsatisfiable;
  range.first = first;
  range.last = std::min(last, size - 1);
  return RangeResult::satisfiable;
}

std::string_view mime_type_for(std::string_view filename) {
  struct Entry {
    const char* extension;
    const char* type;
  };
  // The types Python's mimetypes module answers for common extensions (the KBase cache's clients
  // saw those), with text types carrying a charset like Flask's send_file.
  static const Entry kTypes[] = {
      {"txt", "text/plain; charset=utf-8"},
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"xml", "application/xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/vnd.microsoft.icon"},
      {"webp", "image/webp"},
      {"pdf", "application/pdf"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"mov", "video/quicktime"},
      {"mp4", "video/mp4"},
      {"mp3", "audio/mpeg"},
      {"wav", "audio/x-wav"},
      {"fits", "image/fits"},
      {"md", "text/markdown; charset=utf-8"},
      {"py", "text/x-python; charset=utf-8"},
      {"wasm", "application/wasm"},
      {"bin", "application/octet-stream"},
  };
  size_t dot = filename.rfind('.');
  size_t slash = filename.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string extension = lowercase(filename.substr(dot + 1));
  for (const Entry& entry : kTypes) {
    if (extension == entry.extension) return entry.type;
  }
  return "application/octet-stream";
}

}  // namespace depot::http
