// Streaming multipart/form-data parsing (see multipart_parser.hpp).
#include "engine/multipart_parser.hpp"

#include <algorithm>
#include <cstring>

#include "engine/http_util.hpp"
#include "engine/text.hpp"

namespace depot {
namespace {

// Where `needle` (which starts with CR LF, as every delimiter does) first occurs in `haystack`
// from `from`. memchr for the CR, then a compare: glibc's memchr scans 32 bytes a step, its memmem
// about one, and this scan is the parser's whole cost on an upload (binary data has a CR every
// 256 bytes on average). The LF is checked inline first: a memcmp call per CR cost as much as
// the memchr.
size_t find_delimiter(std::string_view haystack, std::string_view needle, size_t from) {
  const char* end = haystack.data() + haystack.size();
  const char* at = haystack.data() + std::min(from, haystack.size());
  while (static_cast<size_t>(end - at) >= needle.size()) {
    at = static_cast<const char*>(memchr(at, needle.front(), end - at - needle.size() + 1));
    if (at == nullptr) break;
    if (at[1] == needle[1] && memcmp(at + 2, needle.data() + 2, needle.size() - 2) == 0) {
      return static_cast<size_t>(at - haystack.data());
    }
    ++at;
  }
  return std::string_view::npos;
}

// Parameters of a header value like `form-data; name="a b"; filename=x.txt`, names lower-cased.
std::vector<std::pair<std::string, std::string>> header_parameters(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> parameters;
  size_t position = value.find(';');
  while (position != std::string_view::npos && position < value.size()) {
    ++position;
    while (position < value.size() && (value[position] == ' ' || value[position] == '\t'))
      ++position;
    size_t equals = value.find_first_of("=;", position);
    if (equals == std::string_view::npos) break;
    if (value[equals] == ';') {  // a bare token without a value
      position = equals;
      continue;
    }
    std::string name = http::lowercase(trim(value.substr(position, equals - position)));
    position = equals + 1;
    std::string parameter;
    if (position < value.size() && value[position] == '"') {
      for (++position; position < value.size() && value[position] != '"'; ++position) {
        if (value[position] == '\\' && position + 1 < value.size()) ++position;
        parameter.push_back(value[position]);
      }
      position = value.find(';', position);
    } else {
      size_t end = value.find(';', position);
      parameter = std::string(
          trim(value.substr(position, end == std::string_view::npos ? end : end - position)));
      position = end;
    }
    parameters.emplace_back(std::move(name), std::move(parameter));
  }
  return parameters;
}

// RFC 5987 ext-value: charset'language'percent-encoded (only UTF-8 and ASCII are meaningful).
std::string decode_extended_value(std::string_view value) {
  size_t first = value.find('\'');
  size_t second = first == std::string_view::npos ? first : value.find('\'', first + 1);
  if (second == std::string_view::npos) return std::string(value);
  return http::percent_decode(value.substr(second + 1));
}

}  // namespace

MultipartParser::MultipartParser(std::string boundary)
    : dash_boundary_("--" + boundary), delimiter_("\r\n--" + boundary) {
  // RFC 2046 allows 1 to 70 characters, none of them CR or LF (consume_data relies on that).
  if (boundary.empty() || boundary.size() > 200 ||
      boundary.find_first_of("\r\n") != std::string::npos) {
    throw MultipartError("multipart: invalid boundary");
  }
}

std::string MultipartParser::boundary_from_content_type(std::string_view content_type) {
  size_t semicolon = content_type.find(';');
  if (!http::iequals(trim(content_type.substr(0, semicolon)), "multipart/form-data")) return "";
  for (auto& [name, value] : header_parameters(content_type)) {
    if (name == "boundary") return value;
  }
  return "";
}

void MultipartParser::finish() const {
  if (state_ != State::done)
    throw MultipartError("multipart: body ended before the closing boundary");
}

void MultipartParser::feed(std::string_view input, Sink& sink) {
  while (!carry_.empty() && !input.empty()) input = resolve_carry(input, sink);
  if (input.empty()) return;
  size_t position = consume(input, std::string_view::npos, sink);
  carry_.assign(input.substr(position));
}

// Decides the carry with the first bytes of `input` and returns the rest of `input`. Part data is
// never copied beyond the carry: in part data the carry (a partial delimiter) is compared with
// the delimiter directly; elsewhere the carry and a few hundred bytes of `input` are parsed
// together, only until the carry is used up.
std::string_view MultipartParser::resolve_carry(std::string_view input, Sink& sink) {
  if (state_ == State::data) {
    std::string_view rest = std::string_view(delimiter_).substr(carry_.size());
    std::string_view next = input.substr(0, rest.size());
    if (next == rest.substr(0, next.size())) {
      carry_.append(next);
      if (carry_.size() == delimiter_.size()) {
        carry_.clear();
        state_ = State::boundary_line;
      }
      return input.substr(next.size());
    }
    // Not a delimiter, so all data: none starts inside it, as its only CR is its first byte.
    sink.on_part_data(carry_);
    carry_.clear();
    return input;
  }
  constexpr size_t kWindow = 512;  // more than a boundary line or a delimiter needs to be decided
  std::string window = std::move(carry_);
  carry_.clear();
  size_t carried = window.size();
  size_t borrowed = std::min(input.size(), kWindow);
  window.append(input.substr(0, borrowed));
  size_t position = consume(window, carried, sink);
  if (position >= carried) return input.substr(position - carried);
  carry_.assign(window, position);
  return input.substr(borrowed);
}

// Parses `data` until a step needs more input or, having parsed `stop_after` bytes, it may stop;
// returns the position of the first byte not parsed.
size_t MultipartParser::consume(std::string_view data, size_t stop_after, Sink& sink) {
  size_t position = 0;
  while (position < data.size() && position < stop_after) {
    size_t next = position;
    switch (state_) {
      case State::done:
        return data.size();  // the epilogue is ignored
      case State::preamble:
        next = consume_preamble(data, position);
        break;
      case State::boundary_line:
        next = consume_boundary_line(data, position, sink);
        break;
      case State::headers:
        next = consume_headers(data, position, sink);
        break;
      case State::data:
        next = consume_data(data, position, sink);
        break;
    }
    if (next == position) break;
    position = next;
  }
  return position;
}

size_t MultipartParser::consume_preamble(std::string_view data, size_t position) {
  if (at_start_) {  // the first delimiter may come without the CRLF before it
    if (data.size() - position < dash_boundary_.size()) return position;
    at_start_ = false;
    if (data.substr(position, dash_boundary_.size()) == dash_boundary_) {
      state_ = State::boundary_line;
      return position + dash_boundary_.size();
    }
  }
  size_t found = find_delimiter(data, delimiter_, position);
  if (found != std::string_view::npos) {
    state_ = State::boundary_line;
    return found + delimiter_.size();
  }
  return std::max(position, data.size() - std::min(data.size(), delimiter_.size() - 1));
}

// After a delimiter: "--" closes the body; anything else is optional padding, then CRLF.
size_t MultipartParser::consume_boundary_line(std::string_view data, size_t position, Sink& sink) {
  constexpr size_t kMaxPadding = 256;
  if (data.size() - position < 2) return position;
  bool closing = data.substr(position, 2) == "--";
  size_t line_end =
      closing ? position : std::min(data.find_first_not_of(" \t", position), data.size());
  if (line_end - position > kMaxPadding) throw MultipartError("multipart: malformed boundary line");
  if (!closing && data.size() - line_end < 2) return position;
  if (!closing && data.substr(line_end, 2) != "\r\n") {
    throw MultipartError("multipart: malformed boundary line");
  }
  if (in_part_) sink.on_part_end();
  in_part_ = false;
  state_ = closing ? State::done : State::headers;
  return closing ? data.size() : line_end + 2;
}

// A part's headers, up to the empty line. They are looked for in the piece itself; only headers
// split across pieces are collected in header_block_, never more than the limit.
size_t MultipartParser::consume_headers(std::string_view data, size_t position, Sink& sink) {
  constexpr size_t kWindow = kMaxHeaderBytes + 4;  // the headers and the CRLF CRLF ending them
  size_t collected = header_block_.size();
  std::string_view available = data.substr(position, kWindow - collected);
  std::string_view block = available;
  if (collected > 0) {
    header_block_.append(available);
    block = header_block_;
  }
  size_t end = 0;
  size_t terminator = 2;  // a part without headers: the empty line comes first
  if (block.substr(0, 2) != "\r\n") {
    end = block.find("\r\n\r\n", collected >= 3 ? collected - 3 : 0);
    terminator = 4;
  }
  if (end == std::string_view::npos) {
    if (block.size() >= kWindow) {
      throw MultipartError("multipart: part headers exceed " + std::to_string(kMaxHeaderBytes) +
                           " bytes");
    }
    if (collected == 0) header_block_.assign(block);
    return position + available.size();
  }
  MultipartPart part = parse_header_block(block.substr(0, end));
  size_t consumed = end + terminator - collected;
  header_block_.clear();
  sink.on_part_begin(std::move(part));
  in_part_ = true;
  state_ = State::data;
  return position + consumed;
}

// Part data, passed on as views of `data` up to the next delimiter. At the end of the piece a tail
// that may begin a delimiter is held back: it starts at the last CR, since a delimiter's only CR
// is its first byte.
size_t MultipartParser::consume_data(std::string_view data, size_t position, Sink& sink) {
  size_t found = find_delimiter(data, delimiter_, position);
  if (found != std::string_view::npos) {
    if (found > position) sink.on_part_data(data.substr(position, found - position));
    state_ = State::boundary_line;
    return found + delimiter_.size();
  }
  size_t hold = data.size();
  size_t tail = std::max(position, data.size() - std::min(data.size(), delimiter_.size() - 1));
  if (auto* cr = static_cast<const char*>(memrchr(data.data() + tail, '\r', data.size() - tail))) {
    size_t at = static_cast<size_t>(cr - data.data());
    if (data.substr(at) == std::string_view(delimiter_).substr(0, data.size() - at)) hold = at;
  }
  if (hold > position) sink.on_part_data(data.substr(position, hold - position));
  return hold;
}

MultipartPart MultipartParser::parse_header_block(std::string_view block) const {
  MultipartPart part;
  size_t start = 0;
  while (start < block.size()) {
    size_t end = block.find("\r\n", start);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(start, end - start);
    start = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) throw MultipartError("multipart: malformed part header");
    std::string name = http::lowercase(trim(line.substr(0, colon)));
    std::string value(trim(line.substr(colon + 1)));
    if (name == "content-disposition") {
      bool extended = false;
      for (auto& [parameter, text] : header_parameters(value)) {
        if (parameter == "name") part.name = text;
        if (parameter == "filename" && !extended) {
          part.filename = text;
          part.has_filename = true;
        }
        if (parameter == "filename*") {
          part.filename = decode_extended_value(text);
          part.has_filename = true;
          extended = true;
        }
      }
    } else if (name == "content-type") {
      part.content_type = value;
    }
    part.headers.emplace_back(std::move(name), std::move(value));
  }
  return part;
}

}  // namespace depot
