// Streaming multipart/form-data parsing (see multipart_parser.hpp).
#include "engine/multipart_parser.hpp"

#include <cstring>

#include "engine/http_util.hpp"

namespace depot {
namespace {

std::string_view trim(std::string_view text) {
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t");
  return text.substr(start, end - start + 1);
}

size_t find_bytes(std::string_view haystack, std::string_view needle, size_t from) {
  if (from >= haystack.size()) return std::string_view::npos;
  const void* found = memmem(haystack.data() + from, haystack.size() - from, needle.data(), needle.size());
  return found ? static_cast<size_t>(static_cast<const char*>(found) - haystack.data()) : std::string_view::npos;
}

// Parameters of a header value like `form-data; name="a b"; filename=x.txt`, names lower-cased.
std::vector<std::pair<std::string, std::string>> header_parameters(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> parameters;
  size_t position = value.find(';');
  while (position != std::string_view::npos && position < value.size()) {
    ++position;
    while (position < value.size() && (value[position] == ' ' || value[position] == '\t')) ++position;
    size_t equals = value.find('=', position);
    if (equals == std::string_view::npos) break;
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
      parameter = std::string(trim(value.substr(position, end == std::string_view::npos ? end : end - position)));
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
  if (boundary.empty() || boundary.size() > 200) throw MultipartError("multipart: invalid boundary");
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
  if (state_ != State::done) throw MultipartError("multipart: body ended before the closing boundary");
}

void MultipartParser::feed(std::string_view input, Sink& sink) {
  if (!carry_.empty()) {
    if (state_ == State::data) {
      input = resolve_data_carry(input, sink);
    } else {
      // Outside part data the carry is a few bytes of a boundary line: join and parse up to the
      // start of the part data, then go on in the piece itself.
      std::string joined = std::move(carry_);
      carry_.clear();
      size_t carried = joined.size();
      joined.append(input);
      size_t position = process(joined, 0, sink, true);
      if (position >= joined.size()) return;
      if (position < carried) {
        process(joined, position, sink, false);
        return;
      }
      input.remove_prefix(position - carried);
    }
  }
  process(input, 0, sink, false);
}

// Part data with a held-back tail: decides, from the tail and the first bytes of the new piece,
// whether a delimiter starts in the tail. Only the tail is ever copied. Returns the rest of
// `input` still to parse.
std::string_view MultipartParser::resolve_data_carry(std::string_view input, Sink& sink) {
  std::string window = carry_;
  window.append(input.substr(0, delimiter_.size()));
  size_t found = find_bytes(window, delimiter_, 0);
  if (found != std::string::npos && found < carry_.size()) {
    if (found > 0) sink.on_part_data(std::string_view(carry_).substr(0, found));
    input.remove_prefix(found + delimiter_.size() - carry_.size());
    carry_.clear();
    state_ = State::after_delimiter;
    return input;
  }
  if (window.size() < carry_.size() + delimiter_.size()) {  // too little input to decide yet
    carry_ = std::move(window);
    return {};
  }
  sink.on_part_data(carry_);
  carry_.clear();
  return input;
}

size_t MultipartParser::process(std::string_view data, size_t position, Sink& sink, bool stop_at_data) {
  while (position < data.size()) {
    switch (state_) {
      case State::done: return data.size();  // the epilogue is ignored

      case State::preamble: {
        if (at_start_) {  // the first delimiter may come without the CRLF before it
          if (data.size() - position < dash_boundary_.size()) {
            carry_.assign(data.substr(position));
            return data.size();
          }
          at_start_ = false;
          if (data.compare(position, dash_boundary_.size(), dash_boundary_) == 0) {
            position += dash_boundary_.size();
            state_ = State::after_delimiter;
            continue;
          }
        }
        size_t found = find_bytes(data, delimiter_, position);
        if (found == std::string_view::npos) {
          size_t keep = std::min(data.size() - position, delimiter_.size() - 1);
          carry_.assign(data.substr(data.size() - keep));
          return data.size();
        }
        position = found + delimiter_.size();
        state_ = State::after_delimiter;
        continue;
      }

      case State::after_delimiter: {
        if (data.size() - position < 2) {
          carry_.assign(data.substr(position));
          return data.size();
        }
        if (data[position] == '-' && data[position + 1] == '-') {
          if (in_part_) sink.on_part_end();
          in_part_ = false;
          state_ = State::done;
          return data.size();
        }
        size_t line = position;
        while (line < data.size() && (data[line] == ' ' || data[line] == '\t')) ++line;
        if (line - position > 256) throw MultipartError("multipart: malformed boundary line");
        if (data.size() - line < 2) {
          carry_.assign(data.substr(position));
          return data.size();
        }
        if (data[line] != '\r' || data[line + 1] != '\n') throw MultipartError("multipart: malformed boundary line");
        if (in_part_) sink.on_part_end();
        in_part_ = false;
        position = line + 2;
        header_block_.clear();
        state_ = State::headers;
        continue;
      }

      case State::headers:
        position = parse_headers(data, position, sink);
        if (stop_at_data && state_ == State::data) return position;
        continue;

      case State::data: {
        size_t found = find_bytes(data, delimiter_, position);
        if (found != std::string_view::npos) {
          if (found > position) sink.on_part_data(data.substr(position, found - position));
          position = found + delimiter_.size();
          state_ = State::after_delimiter;
          continue;
        }
        // Hold back a tail that could be the start of a delimiter split across pieces.
        size_t hold = data.size();
        size_t first = data.size() > delimiter_.size() ? data.size() - delimiter_.size() + 1 : position;
        for (size_t i = std::max(first, position); i < data.size(); ++i) {
          if (data[i] == '\r' && data.compare(i, data.size() - i, delimiter_, 0, data.size() - i) == 0) {
            hold = i;
            break;
          }
        }
        if (hold > position) sink.on_part_data(data.substr(position, hold - position));
        carry_.assign(data.substr(hold));
        return data.size();
      }
    }
  }
  return position;
}

size_t MultipartParser::parse_headers(std::string_view data, size_t position, Sink& sink) {
  size_t before = header_block_.size();
  header_block_.append(data.substr(position));
  size_t end = std::string::npos;
  size_t skip = 4;
  if (header_block_.compare(0, 2, "\r\n") == 0) {  // a part without headers
    end = 0;
    skip = 2;
  } else {
    end = header_block_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
  }
  if (end == std::string::npos) {
    if (header_block_.size() > kMaxHeaderBytes) {
      throw MultipartError("multipart: part headers exceed " + std::to_string(kMaxHeaderBytes) + " bytes");
    }
    return data.size();
  }
  if (end > kMaxHeaderBytes) {
    throw MultipartError("multipart: part headers exceed " + std::to_string(kMaxHeaderBytes) + " bytes");
  }
  MultipartPart part = parse_header_block(std::string_view(header_block_).substr(0, end));
  size_t consumed_here = end + skip - before;
  header_block_.clear();
  sink.on_part_begin(std::move(part));
  in_part_ = true;
  state_ = State::data;
  return position + consumed_here;
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
