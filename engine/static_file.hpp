// The HTTP decisions of serving a regular file (res:file): its validators (ETag, Last-Modified),
// conditional GET (If-None-Match before If-Modified-Since, RFC 9110 §13.2.2), one byte Range with
// If-Range (206 / 416), and the download name's Content-Disposition. It only decides: it never
// opens a file, touches a socket or Lua; the caller sends what it answers.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "engine/http_util.hpp"

namespace depot {

struct RequestHead;

namespace static_file {

// What the answer depends on of the file itself (from fstat).
struct FileFacts {
  uint64_t size = 0;
  timespec modified{};
};

// What to send: `status` with `headers`, then `length` bytes of the file from `offset` when
// `send_body` (false for 304 and 416, which carry no part of the file).
struct Answer {
  int status = 200;
  http::Headers headers;
  bool send_body = true;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// A strong validator from the size and the modification time in nanoseconds: a file replaced
// within the same second still gets a new one.
std::string etag(const FileFacts& file);

// `attachment` with the name twice: an ASCII fallback and the RFC 8187 UTF-8 form.
std::string content_disposition(std::string_view download_name);

// How the script asked for the file to be served.
struct Choices {
  int status = 200;  // a Range applies only to 200
  std::string content_type;
  std::string download_name;  // "" for none: no Content-Disposition
  http::Headers headers;      // the script's own, sent first
};

// The answer to `head` for `file`.
Answer decide(const RequestHead& head, const FileFacts& file, Choices choices);

}  // namespace static_file
}  // namespace depot
