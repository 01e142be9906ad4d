// A streaming multipart/form-data parser (RFC 7578): feed it a request body in pieces of any
// size and it reports each part's headers, then its data, then its end. Memory is bounded: it
// never holds a part's data, only a possible partial delimiter between pieces (at most the
// delimiter's length) and one part's header block (at most 16 KiB).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace depot {

struct MultipartError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct MultipartPart {
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::string name;                                          // Content-Disposition name="..."
  std::string filename;  // filename="..." or the decoded filename*=UTF-8''...
  bool has_filename = false;
  std::string content_type;  // "" if absent
};

class MultipartParser {
 public:
  // `boundary` is the Content-Type's boundary parameter (without the leading "--").
  explicit MultipartParser(std::string boundary);
  // The boundary of a multipart/form-data Content-Type value, or "" if it is not one.
  static std::string boundary_from_content_type(std::string_view content_type);

  struct Sink {
    virtual ~Sink() = default;
    virtual void on_part_begin(MultipartPart part) = 0;
    virtual void on_part_data(std::string_view data) = 0;
    virtual void on_part_end() = 0;
  };

  // Throws MultipartError on malformed input.
  void feed(std::string_view input, Sink& sink);
  // True once the closing delimiter was seen (the epilogue after it is ignored).
  bool finished() const { return state_ == State::done; }
  // Throws MultipartError if the body ended before the closing delimiter.
  void finish() const;

 private:
  enum class State { preamble, boundary_line, headers, data, done };
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;

  // The steps: each parses `data` from `position` and returns where it stopped. Returning
  // `position` unchanged means it cannot decide without more input (the rest becomes carry_).
  size_t consume(std::string_view data, size_t stop_after, Sink& sink);
  size_t consume_preamble(std::string_view data, size_t position);
  size_t consume_boundary_line(std::string_view data, size_t position, Sink& sink);
  size_t consume_headers(std::string_view data, size_t position, Sink& sink);
  size_t consume_data(std::string_view data, size_t position, Sink& sink);
  std::string_view resolve_carry(std::string_view input, Sink& sink);
  MultipartPart parse_header_block(std::string_view block) const;

  std::string dash_boundary_;  // "--boundary"
  std::string delimiter_;      // "\r\n--boundary"
  State state_ = State::preamble;
  bool at_start_ = true;
  bool in_part_ = false;
  // The undecided end of the previous piece, never part data that could have been passed on: a
  // partial delimiter (shorter than the delimiter), or the start of a boundary line.
  std::string carry_;
  std::string header_block_;  // headers split across pieces: at most 16 KiB and the CRLF CRLF
};

}  // namespace depot
