// Conditional GET, Range and validators for file responses (see static_file.hpp).
#include "engine/static_file.hpp"

#include <cctype>
#include <cstdio>

#include "engine/exchange.hpp"

namespace depot::static_file {
namespace {

// If-None-Match lists entity tags; "*" matches any. The comparison is by substring, which is
// weak comparison for the tags this unit makes (they never contain one another).
bool etag_listed(const std::string& header, const std::string& etag) {
  if (header.find('*') != std::string::npos) return true;
  return header.find(etag) != std::string::npos;
}

bool not_modified(const RequestHead& head, const FileFacts& file, const std::string& etag) {
  if (head.method != "GET" && head.method != "HEAD") return false;
  if (const std::string* match = head.header("if-none-match")) return etag_listed(*match, etag);
  if (const std::string* since = head.header("if-modified-since")) {
    std::optional<time_t> when = http::parse_http_date(*since);
    return when && *when >= file.modified.tv_sec;
  }
  return false;
}

}  // namespace

std::string etag(const FileFacts& file) {
  char text[64];
  snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(file.size),
           static_cast<unsigned long long>(file.modified.tv_sec) * 1000000000ULL +
               static_cast<unsigned long long>(file.modified.tv_nsec));
  return text;
}

std::string content_disposition(std::string_view download_name) {
  std::string ascii;
  std::string encoded;
  for (unsigned char c : download_name) {
    ascii.push_back(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '_' : static_cast<char>(c));
    if (isalnum(c) || c == '.' || c == '-' || c == '_') {
      encoded.push_back(static_cast<char>(c));
    } else {
      char escaped[4];
      snprintf(escaped, sizeof escaped, "%%%02X", c);
      encoded.append(escaped);
    }
  }
  return "attachment; filename=\"" + ascii + "\"; filename*=UTF-8''" + encoded;
}

Answer decide(const RequestHead& head, const FileFacts& file, Choices choices) {
  Answer answer;
  http::Headers& headers = choices.headers;
  std::string tag = etag(file);
  headers.emplace_back("ETag", tag);
  headers.emplace_back("Last-Modified", http::http_date(file.modified.tv_sec));
  headers.emplace_back("Accept-Ranges", "bytes");
  if (!choices.download_name.empty()) {
    headers.emplace_back("Content-Disposition", content_disposition(choices.download_name));
  }
  if (not_modified(head, file, tag)) {
    answer.status = 304;
    answer.send_body = false;
    answer.headers = std::move(headers);
    return answer;
  }
  headers.emplace_back("Content-Type", choices.content_type);
  int status = choices.status;
  answer.status = status;
  answer.length = file.size;
  const std::string* range_header = head.header("range");
  const std::string* if_range = head.header("if-range");
  if (range_header && status == 200 && (if_range == nullptr || *if_range == tag)) {
    http::ByteRange range{};
    switch (http::parse_range(*range_header, file.size, range)) {
      case http::RangeResult::satisfiable:
        headers.emplace_back("Content-Range", "bytes " + std::to_string(range.first) + "-" +
                                                  std::to_string(range.last) + "/" +
                                                  std::to_string(file.size));
        answer.status = 206;
        answer.offset = range.first;
        answer.length = range.last - range.first + 1;
        break;
      case http::RangeResult::unsatisfiable:
        headers.emplace_back("Content-Range", "bytes */" + std::to_string(file.size));
        answer.status = 416;
        answer.send_body = false;
        answer.length = 0;
        break;
      case http::RangeResult::none:
        break;
    }
  }
  answer.headers = std::move(headers);
  return answer;
}

}  // namespace depot::static_file
