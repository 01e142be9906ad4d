// Lua module `json`: JSON text <-> Lua values, and Python-exact renderings of JSON text for the
// cache keys of the ported services (specs file-cache.md §1.2, image-cache.md §2.2).
//
//   json.decode(text) -> value | nil, message     json.encode(value) -> text
//   json.python_json(text) -> text | nil, message  json.python_repr(text) -> text | nil, message
//   json.member_text(text, name) -> text | nil | nil, message
//   json.null, json.array_mt, json.object_mt
//
// One parser serves all readers. It follows Python's json.loads grammar (NaN, Infinity, lone
// surrogate escapes; duplicate keys keep the first position and the last value), so the Python
// renderings can be exact. They work from the parsed text rather than from Lua values because a
// Lua number holds 53 bits and Python integers have no limit. Full reference: docs/lua-api.md
// (json).
#include <locale.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bindings/binding.hpp"

namespace depot {
namespace {

// Deeper documents are refused (Python's json.loads hits its recursion limit near here as well),
// which also bounds the C stack used by the recursive parser, encoder and renderers.
constexpr int kMaxDepth = 1000;

// ---------------------------------------------------------------------------------------------
// Parsing

struct Node {
  enum class Kind { null, boolean, integer, real, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  double real = 0;
  std::string text;               // integer: digits as written; string: value (see Parser)
  std::vector<std::string> keys;  // object: keys in first-occurrence order, no duplicates
  std::vector<Node> items;        // array: elements; object: values, parallel to keys
  size_t begin = 0, end = 0;      // where the value's text lies in the document
};

// JSON's two-character escapes: \" \\ \/ \b \f \n \r \t (json.dumps never writes \/).
constexpr std::string_view kEscapeLetters = "\"\\/bfnrt";
constexpr std::string_view kEscapedCharacters = "\"\\/\b\f\n\r\t";

struct ParseError {
  size_t offset;  // in bytes
  const char* reason;
};

// strtod_l with the C locale: a script's os.setlocale must not change what "1.5" means.
double to_double(std::string_view token) {
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", nullptr);
  std::string terminated(token);
  return strtod_l(terminated.c_str(), nullptr, c_locale);
}

// The end of the run of printable ASCII (' '..'~') other than `quote` and '\\' that starts at
// `from`: what the parser and both string writers copy as it is. 16 bytes a step where SSE2 is:
// strings were most of the image cache's POST (it parses its 3.8 KB query four times).
size_t plain_run_end(std::string_view text, size_t from, char quote) {
  size_t i = from;
#ifdef __SSE2__
  const __m128i quotes = _mm_set1_epi8(quote);
  const __m128i backslashes = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(' ');
  const __m128i tilde = _mm_set1_epi8('~');
  for (; i + 16 <= text.size(); i += 16) {
    __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
    // Signed bytes: those >= 0x80 are negative, so below ' ' too.
    __m128i special = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(chunk, quotes), _mm_cmpeq_epi8(chunk, backslashes)),
        _mm_or_si128(_mm_cmplt_epi8(chunk, space), _mm_cmpgt_epi8(chunk, tilde)));
    int mask = _mm_movemask_epi8(special);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i < text.size() && text[i] >= ' ' && text[i] <= '~' && text[i] != quote &&
         text[i] != '\\') {
    ++i;
  }
  return i;
}

// Length of the well-formed UTF-8 sequence at the start of `bytes`, 0 if there is none.
size_t utf8_sequence_length(std::string_view bytes) {
  auto byte = [&](size_t i) -> unsigned {
    return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0;
  };
  auto continuation = [&](size_t i, unsigned low = 0x80, unsigned high = 0xBF) {
    return byte(i) >= low && byte(i) <= high;
  };
  unsigned lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned low = lead == 0xE0 ? 0xA0 : 0x80, high = lead == 0xED ? 0x9F : 0xBF;  // no surrogates
    return continuation(1, low, high) && continuation(2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned low = lead == 0xF0 ? 0x90 : 0x80, high = lead == 0xF4 ? 0x8F : 0xBF;
    return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

// UTF-8, generalised to surrogate code points (WTF-8) so that lone surrogates survive.
void append_code_point(std::string& out, char32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// Python's json.loads grammar over UTF-8 text. String values are stored as UTF-8, except that a
// lone surrogate escape such as "\ud800" (which Python keeps as a code point) is stored WTF-8.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Node parse_document() {
    skip_whitespace();
    Node root = parse_value(0);
    skip_whitespace();
    if (position_ != text_.size()) fail("Extra data");
    return root;
  }

 private:
  [[noreturn]] void fail(const char* reason) const { fail_at(position_, reason); }
  [[noreturn]] static void fail_at(size_t offset, const char* reason) {
    throw ParseError{offset, reason};
  }

  char peek(size_t ahead = 0) const {
    return position_ + ahead < text_.size() ? text_[position_ + ahead] : '\0';
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  bool consume(std::string_view word) {
    if (text_.substr(position_, word.size()) != word) return false;
    position_ += word.size();
    return true;
  }
  void skip_whitespace() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') ++position_;
  }

  Node parse_value(int depth) {
    Node node;
    node.begin = position_;
    char c = peek();
    if (c == '"') {
      node.kind = Node::Kind::string;
      node.text = parse_string();
    } else if (c == '[' || c == '{') {
      if (depth >= kMaxDepth) fail("Nesting deeper than 1000 levels");
      if (c == '[') {
        parse_array(node, depth + 1);
      } else {
        parse_object(node, depth + 1);
      }
    } else if (consume("null")) {
    } else if (consume("true") || consume("false")) {
      node.kind = Node::Kind::boolean;
      node.boolean = c == 't';
    } else if (consume("NaN") || consume("Infinity") || consume("-Infinity")) {
      node.kind = Node::Kind::real;
      node.real = c == 'N' ? NAN : c == '-' ? -HUGE_VAL : HUGE_VAL;
    } else if (c == '-' || is_digit(c)) {
      parse_number(node);
    } else {
      fail("Expecting value");
    }
    node.end = position_;
    return node;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? -- an optional part is taken only if complete;
  // whatever is left ("1." or "01") is then an error for the caller, as in Python.
  void parse_number(Node& node) {
    size_t start = position_;
    consume("-");
    if (!is_digit(peek())) fail_at(start, "Expecting value");
    if (!consume("0")) skip_digits();
    bool integer = true;
    if (peek() == '.' && is_digit(peek(1))) {
      ++position_;
      skip_digits();
      integer = false;
    }
    if (peek() == 'e' || peek() == 'E') {
      size_t sign = peek(1) == '+' || peek(1) == '-' ? 1 : 0;
      if (is_digit(peek(1 + sign))) {
        position_ += 1 + sign;
        skip_digits();
        integer = false;
      }
    }
    std::string_view token = text_.substr(start, position_ - start);
    if (integer) {
      node.kind = Node::Kind::integer;
      node.text = token;
    } else {
      node.kind = Node::Kind::real;
      node.real = to_double(token);
    }
  }
  void skip_digits() {
    while (is_digit(peek())) ++position_;
  }

  std::string parse_string() {
    size_t start = position_++;
    std::string value;
    for (;;) {
      size_t run = plain_run_end(text_, position_, '"');  // copied in one go
      value.append(text_, position_, run - position_);
      position_ = run;
      if (position_ >= text_.size()) fail_at(start, "Unterminated string");
      char c = text_[position_];
      if (c == '"') {
        ++position_;
        return value;
      }
      if (c == '\\') {
        append_escape(value);
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("Invalid control character");
      size_t length = utf8_sequence_length(text_.substr(position_));
      if (length == 0) fail("Invalid UTF-8");
      value.append(text_, position_, length);
      position_ += length;
    }
  }

  void append_escape(std::string& value) {
    size_t start = position_;
    char c = peek(1);
    position_ += 2;
    size_t short_escape = kEscapeLetters.find(c);
    if (short_escape != std::string_view::npos) {
      value += kEscapedCharacters[short_escape];
      return;
    }
    if (c != 'u') fail_at(start, "Invalid \\escape");
    char32_t code = read_hex4(start);
    // Like Python: a high surrogate joins an immediately following low-surrogate escape;
    // otherwise both stay lone code points.
    if (code >= 0xD800 && code <= 0xDBFF && peek() == '\\' && peek(1) == 'u') {
      size_t next = position_;
      position_ += 2;
      char32_t low = read_hex4(next);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      } else {
        position_ = next;
      }
    }
    append_code_point(value, code);
  }

  char32_t read_hex4(size_t escape_start) {
    char32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      char lower = static_cast<char>(c | 0x20);
      int digit = is_digit(c) ? c - '0' : lower >= 'a' && lower <= 'f' ? lower - 'a' + 10 : -1;
      if (digit < 0) fail_at(escape_start, "Invalid \\uXXXX escape");
      code = code * 16 + digit;
      ++position_;
    }
    return code;
  }

  void parse_array(Node& node, int depth) {
    node.kind = Node::Kind::array;
    ++position_;
    skip_whitespace();
    if (consume("]")) return;
    for (;;) {
      node.items.push_back(parse_value(depth));
      skip_whitespace();
      if (consume("]")) return;
      if (!consume(",")) fail("Expecting ',' delimiter");
      skip_whitespace();
    }
  }

  void parse_object(Node& node, int depth) {
    node.kind = Node::Kind::object;
    ++position_;
    skip_whitespace();
    if (consume("}")) return;
    std::unordered_map<std::string, size_t> index_of_key;
    for (;;) {
      if (peek() != '"') fail("Expecting property name enclosed in double quotes");
      std::string key = parse_string();
      skip_whitespace();
      if (!consume(":")) fail("Expecting ':' delimiter");
      skip_whitespace();
      Node value = parse_value(depth);
      auto [slot, inserted] = index_of_key.try_emplace(key, node.keys.size());
      if (inserted) {
        node.keys.push_back(std::move(key));
        node.items.push_back(std::move(value));
      } else {
        node.items[slot->second] = std::move(value);
      }
      skip_whitespace();
      if (consume("}")) return;
      if (!consume(",")) fail("Expecting ',' delimiter");
      skip_whitespace();
    }
  }

  std::string_view text_;
  size_t position_ = 0;
};

// "<function>: syntax error at line L column C (char N): <reason>", positions counted in
// characters like Python's JSONDecodeError.
std::string describe(const char* function, std::string_view text, const ParseError& error) {
  size_t line = 1, column = 1, character = 0;
  for (size_t i = 0; i < error.offset && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // inside a character
    ++character;
    ++column;
    if (text[i] == '\n') {
      ++line;
      column = 1;
    }
  }
  return std::string(function) + ": syntax error at line " + std::to_string(line) + " column " +
         std::to_string(column) + " (char " + std::to_string(character) + "): " + error.reason;
}

// ---------------------------------------------------------------------------------------------
// Python renderings

struct CodePointRange {
  char32_t first, last;
};
const CodePointRange kNotPrintable[] = {
#include "bindings/json_python_printable.inc"
};

// Python's str.isprintable() for one code point >= 0x80.
bool python_printable(char32_t code) {
  const auto* after = std::upper_bound(
      std::begin(kNotPrintable), std::end(kNotPrintable), code,
      [](char32_t value, const CodePointRange& range) { return value < range.first; });
  return after == std::begin(kNotPrintable) || (after - 1)->last < code;
}

// Decodes our own UTF-8 / WTF-8 strings, which the parser has already checked.
char32_t next_code_point(std::string_view text, size_t& i) {
  auto lead = static_cast<unsigned char>(text[i++]);
  if (lead < 0x80) return lead;
  int extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
  char32_t code = lead & (0x3F >> extra);
  while (extra-- > 0) code = (code << 6) | (static_cast<unsigned char>(text[i++]) & 0x3F);
  return code;
}

void append_hex(std::string& out, const char* prefix, char32_t value, int digits) {
  out += prefix;
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4)
    out += "0123456789abcdef"[(value >> shift) & 0xF];
}

// Python's repr(float) for finite values: std::to_chars gives the shortest digits that round-trip
// (the digits Python's dtoa picks); they are laid out like float_repr_style 'short'.
void append_float_repr(std::string& out, double value) {
  char buffer[32];
  char* end =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific).ptr;
  std::string_view text(buffer, end - buffer);  // "-d.ddde+XX"
  size_t e = text.find('e');
  int exponent = std::atoi(std::string(text.substr(e + 1)).c_str());
  if (exponent < -4 || exponent >= 16) {  // Python writes these the way to_chars does
    out += text;
    return;
  }
  if (text[0] == '-') {
    out += '-';
    text.remove_prefix(1);
    --e;
  }
  std::string digits(1, text[0]);
  if (e > 1) digits += text.substr(2, e - 2);
  if (exponent < 0) {
    out += "0.";
    out.append(-exponent - 1, '0');
    out += digits;
  } else if (digits.size() <= static_cast<size_t>(exponent) + 1) {
    out += digits;
    out.append(exponent + 1 - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, exponent + 1);
    out += '.';
    out.append(digits, exponent + 1);
  }
}

// json.dumps with ensure_ascii: escapes everything outside ' '..'~', astral code points as
// surrogate pairs.
void append_json_string(std::string& out, std::string_view value) {
  out += '"';
  for (size_t i = 0; i < value.size();) {
    size_t run = plain_run_end(value, i, '"');  // needs no escape: copied in one go
    out.append(value, i, run - i);
    i = run;
    if (i == value.size()) break;
    char32_t c = next_code_point(value, i);
    size_t short_escape = c < 0x80 && c != '/' ? kEscapedCharacters.find(static_cast<char>(c))
                                               : std::string_view::npos;
    if (short_escape != std::string_view::npos) {
      out += '\\';
      out += kEscapeLetters[short_escape];
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else if (c < 0x10000) {
      append_hex(out, "\\u", c, 4);
    } else {
      append_hex(out, "\\u", 0xD800 + ((c - 0x10000) >> 10), 4);
      append_hex(out, "\\u", 0xDC00 + ((c - 0x10000) & 0x3FF), 4);
    }
  }
  out += '"';
}

// repr(str): single quotes unless the text has ' and no "; printable non-ASCII stays literal.
void append_string_repr(std::string& out, std::string_view value) {
  bool single = value.find('\'') != std::string_view::npos;
  bool double_ = value.find('"') != std::string_view::npos;
  char quote = single && !double_ ? '"' : '\'';
  out += quote;
  for (size_t i = 0; i < value.size();) {
    size_t run = plain_run_end(value, i, quote);  // needs no escape: copied in one go
    out.append(value, i, run - i);
    i = run;
    if (i == value.size()) break;
    size_t start = i;
    char32_t c = next_code_point(value, i);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      append_hex(out, "\\x", c, 2);
    } else if (c < 0x7F || python_printable(c)) {
      out.append(value, start, i - start);
    } else if (c < 0x100) {
      append_hex(out, "\\x", c, 2);
    } else if (c < 0x10000) {
      append_hex(out, "\\u", c, 4);
    } else {
      append_hex(out, "\\U", c, 8);
    }
  }
  out += quote;
}

// What differs between json.dumps(sort_keys=True) and str(); the containers are shared.
struct PythonStyle {
  const char *null, *true_, *false_, *nan, *infinity, *minus_infinity;
  void (*append_string)(std::string& out, std::string_view value);
  bool sort_keys;
};
const PythonStyle kJsonDumps{
    "null", "true", "false", "NaN", "Infinity", "-Infinity", append_json_string, true};
const PythonStyle kStr{"None", "True", "False", "nan", "inf", "-inf", append_string_repr, false};

void write_python(std::string& out, const Node& node, const PythonStyle& style) {
  switch (node.kind) {
    case Node::Kind::null:
      out += style.null;
      break;
    case Node::Kind::boolean:
      out += node.boolean ? style.true_ : style.false_;
      break;
    case Node::Kind::integer:
      out += node.text == "-0" ? "0" : node.text;
      break;
    case Node::Kind::real:
      if (std::isnan(node.real)) {
        out += style.nan;
      } else if (std::isinf(node.real)) {
        out += node.real < 0 ? style.minus_infinity : style.infinity;
      } else {
        append_float_repr(out, node.real);
      }
      break;
    case Node::Kind::string:
      style.append_string(out, node.text);
      break;
    case Node::Kind::array:
      out += '[';
      for (size_t i = 0; i < node.items.size(); ++i) {
        if (i > 0) out += ", ";
        write_python(out, node.items[i], style);
      }
      out += ']';
      break;
    case Node::Kind::object: {
      std::vector<size_t> order(node.keys.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      // Byte order of UTF-8 (and WTF-8) is code point order, which is how Python sorts str.
      if (style.sort_keys) {
        std::sort(order.begin(), order.end(),
                  [&](size_t a, size_t b) { return node.keys[a] < node.keys[b]; });
      }
      out += '{';
      for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0) out += ", ";
        style.append_string(out, node.keys[order[i]]);
        out += ": ";
        write_python(out, node.items[order[i]], style);
      }
      out += '}';
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Lua boundary

const char kNullSentinel = 0;
void* json_null() {
  return const_cast<char*>(&kNullSentinel);
}
const char* const kArrayMetatable = "depot.json.array_mt";
const char* const kObjectMetatable = "depot.json.object_mt";

// Parses argument 1 and hands the tree to `use`, which pushes the results; bad JSON returns
// nil and the message instead. A non-string argument is a caller bug and raises.
template <typename Use>
int with_parsed_text(lua_State* L, const char* function, Use use) {
  if (lua_type(L, 1) != LUA_TSTRING) {
    return luaL_error(L, "%s: text must be a string, got %s", function, luaL_typename(L, 1));
  }
  size_t length;
  const char* data = lua_tolstring(L, 1, &length);
  std::string_view text(data, length);
  std::optional<Node> root;
  std::string error;
  try {
    root = Parser(text).parse_document();
  } catch (const ParseError& parse_error) {
    error = describe(function, text, parse_error);
  }
  if (!root) return push_failure(L, error);
  return use(*root);
}

// Pushes `node`; the marker metatables are at stack slots array_mt and object_mt.
void push_node(lua_State* L, const Node& node, int array_mt, int object_mt) {
  luaL_checkstack(L, 3, "json.decode: document too deep");
  switch (node.kind) {
    case Node::Kind::null:
      lua_pushlightuserdata(L, json_null());
      break;
    case Node::Kind::boolean:
      lua_pushboolean(L, node.boolean);
      break;
    case Node::Kind::integer:
      lua_pushnumber(L, to_double(node.text));
      break;
    case Node::Kind::real:
      lua_pushnumber(L, node.real);
      break;
    case Node::Kind::string:
      lua_pushlstring(L, node.text.data(), node.text.size());
      break;
    case Node::Kind::array:
      lua_createtable(L, static_cast<int>(node.items.size()), 0);
      for (size_t i = 0; i < node.items.size(); ++i) {
        push_node(L, node.items[i], array_mt, object_mt);
        lua_rawseti(L, -2, static_cast<int>(i + 1));
      }
      lua_pushvalue(L, array_mt);
      lua_setmetatable(L, -2);
      break;
    case Node::Kind::object:
      lua_createtable(L, 0, static_cast<int>(node.keys.size()));
      for (size_t i = 0; i < node.keys.size(); ++i) {
        lua_pushlstring(L, node.keys[i].data(), node.keys[i].size());
        push_node(L, node.items[i], array_mt, object_mt);
        lua_rawset(L, -3);
      }
      lua_pushvalue(L, object_mt);
      lua_setmetatable(L, -2);
      break;
  }
}

// json.decode(text) -> value | nil, message
// Anywhere (request, timer, job, init). null -> json.null; arrays/objects -> tables carrying
// json.array_mt / json.object_mt; numbers -> Lua numbers (integers beyond 2^53 lose precision).
// Bad JSON returns nil and a positioned message; raises only if text is not a string.
//   json.decode('{"a": [1, null]}').a[2] == json.null
int decode(lua_State* L) {
  return with_parsed_text(L, "json.decode", [L](const Node& root) {
    lua_settop(L, 1);
    luaL_getmetatable(L, kArrayMetatable);
    luaL_getmetatable(L, kObjectMetatable);
    push_node(L, root, 2, 3);
    return 1;
  });
}

// json.python_json(text) -> text | nil, message
// Python's json.dumps(json.loads(text), sort_keys=True), byte for byte: the canonical JSON of
// file-cache.md §1.2. Anywhere. Bad JSON returns nil and a positioned message.
//   json.python_json('{"b":1,"a":"é"}') == [[{"a": "\u00e9", "b": 1}]]
int python_json(lua_State* L) {
  return with_parsed_text(L, "json.python_json", [L](const Node& root) {
    std::string out;
    write_python(out, root, kJsonDumps);
    lua_pushlstring(L, out.data(), out.size());
    return 1;
  });
}

// json.python_repr(text) -> text | nil, message
// Python's str(json.loads(text)) as UTF-8: the hashed text of image-cache.md §2.2. A top-level
// string comes back as itself, unquoted, since that is what str() does. Anywhere. Bad JSON
// returns nil and a positioned message.
//   json.python_repr('{"a":"it\'s","b":1e5}') == [[{'a': "it's", 'b': 100000.0}]]
int python_repr(lua_State* L) {
  return with_parsed_text(L, "json.python_repr", [L](const Node& root) {
    std::string out;
    if (root.kind == Node::Kind::string) {
      out = root.text;
    } else {
      write_python(out, root, kStr);
    }
    lua_pushlstring(L, out.data(), out.size());
    return 1;
  });
}

// json.member_text(text, name) -> text | nil | nil, message
// The JSON text of member `name` of the object `text`, exactly as written (the last one if the
// name is repeated, as json.loads keeps): what a Python rendering of that member must start from,
// since decoding and re-encoding would lose key order and number spelling. nil when `text` is
// no object or has no such member. Anywhere. Bad JSON returns nil and a positioned message.
//   json.member_text('{"q": {"b": 1, "a": 1.50}, "ttl": 60}', "q") == '{"b": 1, "a": 1.50}'
int member_text(lua_State* L) {
  std::string_view name = check_string_view(L, 2, "json.member_text", "name");
  return with_parsed_text(L, "json.member_text", [L, name](const Node& root) {
    if (root.kind == Node::Kind::object) {
      for (size_t i = 0; i < root.keys.size(); ++i) {
        if (root.keys[i] != name) continue;
        size_t length;
        const char* text = lua_tolstring(L, 1, &length);
        const Node& value = root.items[i];
        lua_pushlstring(L, text + value.begin, value.end - value.begin);
        return 1;
      }
    }
    lua_pushnil(L);
    return 1;
  });
}

// Lua value -> compact JSON text, written straight into one string: the text nlohmann::json's
// dump() gives for the same value (keys in bytewise order; for a key written twice, a number 1
// and a string "1", the value met last), without its tree of maps and strings per value, which
// made a five-field table cost ~4.5 us (every kv table value and JSON answer is one). Throws
// std::runtime_error with the final Lua error message; a string that is not UTF-8 is reported
// only once the whole value was read, as dump() did after building its tree.
class Encoder {
 public:
  Encoder(lua_State* L, int array_mt, int object_mt)
      : L_(L), array_mt_(array_mt), object_mt_(object_mt) {}

  std::string encode(int index) {
    std::string out;
    value(out, index, 0);
    if (invalid_utf8_) throw std::runtime_error("json.encode: strings must be valid UTF-8");
    return out;
  }

 private:
  void value(std::string& out, int index, int depth) {
    switch (lua_type(L_, index)) {
      case LUA_TNIL:
        out += "null";
        return;
      case LUA_TBOOLEAN:
        out += lua_toboolean(L_, index) != 0 ? "true" : "false";
        return;
      case LUA_TNUMBER:
        number(out, lua_tonumber(L_, index));
        return;
      case LUA_TSTRING: {
        size_t length;
        const char* data = lua_tolstring(L_, index, &length);
        string(out, std::string_view(data, length));
        return;
      }
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L_, index) == json_null()) {
          out += "null";
          return;
        }
        break;
      case LUA_TTABLE:
        table(out, index, depth);
        return;
    }
    throw std::runtime_error(std::string("json.encode: cannot encode a ") +
                             luaL_typename(L_, index));
  }

  static void number(std::string& out, double number) {
    if (!std::isfinite(number)) throw std::runtime_error("json.encode: cannot encode NaN or inf");
    // Lua 5.1 has one number type; whole numbers print without ".0" while they are exact.
    bool whole = std::trunc(number) == number && std::fabs(number) < 9007199254740992.0;
    if (whole && !(number == 0 && std::signbit(number))) {
      char buffer[24];
      auto end = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(number));
      out.append(buffer, end.ptr);
      return;
    }
    out += nlohmann::json(number).dump();  // its shortest round-trip spelling, kept as it was
  }

  // dump()'s escapes: the short ones, \u00xx for the other control characters, the rest as is.
  void string(std::string& out, std::string_view text) {
    out += '"';
    for (size_t i = 0; i < text.size();) {
      size_t run = plain_run_end(text, i, '"');
      out.append(text, i, run - i);
      i = run;
      if (i == text.size()) break;
      auto byte = static_cast<unsigned char>(text[i]);
      size_t short_escape =
          byte != '/' ? kEscapedCharacters.find(static_cast<char>(byte)) : std::string_view::npos;
      if (short_escape != std::string_view::npos) {
        out += '\\';
        out += kEscapeLetters[short_escape];
        ++i;
      } else if (byte < 0x20) {
        append_hex(out, "\\u", byte, 4);
        ++i;
      } else if (byte == 0x7F) {
        out += static_cast<char>(byte);
        ++i;
      } else {
        size_t length = utf8_sequence_length(text.substr(i));
        if (length == 0) {
          invalid_utf8_ = true;
          return;
        }
        out.append(text, i, length);
        i += length;
      }
    }
    out += '"';
  }

  void table(std::string& out, int index, int depth) {
    if (depth >= kMaxDepth) {
      throw std::runtime_error("json.encode: nesting deeper than 1000 levels");
    }
    const void* identity = lua_topointer(L_, index);
    if (std::find(open_tables_.begin(), open_tables_.end(), identity) != open_tables_.end()) {
      throw std::runtime_error("json.encode: cycle (a table contains itself)");
    }
    open_tables_.push_back(identity);
    luaL_checkstack(L_, 4, "json.encode: value too deep");
    std::optional<size_t> length = array_length(index);
    if (length) {
      array(out, index, *length, depth);
    } else {
      object(out, index, depth);
    }
    open_tables_.pop_back();
  }

  // An array is a table marked with array_mt (length #t), or unmarked with keys exactly 1..n.
  std::optional<size_t> array_length(int index) {
    if (lua_getmetatable(L_, index)) {
      bool array = lua_rawequal(L_, -1, array_mt_), object = lua_rawequal(L_, -1, object_mt_);
      lua_pop(L_, 1);
      if (array) return lua_objlen(L_, index);
      if (object) return std::nullopt;
    }
    size_t count = 0;
    double largest = 0;
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      lua_pop(L_, 1);
      double key = lua_type(L_, -1) == LUA_TNUMBER ? lua_tonumber(L_, -1) : 0;
      if (key < 1 || std::trunc(key) != key) {
        lua_pop(L_, 1);
        return std::nullopt;
      }
      largest = std::max(largest, key);
      ++count;
    }
    if (count == 0 || largest != static_cast<double>(count)) return std::nullopt;
    return count;
  }

  void array(std::string& out, int index, size_t length, int depth) {
    out += '[';
    for (size_t i = 1; i <= length; ++i) {
      if (i > 1) out += ',';
      lua_rawgeti(L_, index, static_cast<int>(i));
      value(out, lua_gettop(L_), depth + 1);
      lua_pop(L_, 1);
    }
    out += ']';
  }

  // Members are written in key order once all are read: each value is written apart first.
  void object(std::string& out, int index, int depth) {
    std::vector<std::pair<std::string, std::string>> members;
    lua_pushnil(L_);
    while (lua_next(L_, index) != 0) {
      std::string key = key_text(lua_gettop(L_) - 1);
      std::string text;
      value(text, lua_gettop(L_), depth + 1);
      members.emplace_back(std::move(key), std::move(text));
      lua_pop(L_, 1);
    }
    std::stable_sort(members.begin(), members.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    out += '{';
    bool first = true;
    for (size_t i = 0; i < members.size(); ++i) {
      if (i + 1 < members.size() && members[i + 1].first == members[i].first) continue;
      if (!first) out += ',';
      first = false;
      string(out, members[i].first);
      out += ':';
      out += members[i].second;
    }
    out += '}';
  }

  std::string key_text(int index) {
    int type = lua_type(L_, index);
    if (type != LUA_TSTRING && type != LUA_TNUMBER) {
      throw std::runtime_error(
          std::string("json.encode: object keys must be strings or numbers, got ") +
          lua_typename(L_, type));
    }
    lua_pushvalue(L_, index);  // converting a number key in place would confuse lua_next
    size_t length;
    const char* data = lua_tolstring(L_, -1, &length);
    std::string key(data, length);
    lua_pop(L_, 1);
    return key;
  }

  lua_State* L_;
  int array_mt_, object_mt_;
  std::vector<const void*> open_tables_;  // tables being encoded: the path from the root
  bool invalid_utf8_ = false;
};

// json.encode(value) -> text
// Compact JSON (no spaces; object keys sorted). Anywhere. Tables marked array_mt, or with keys
// exactly 1..n, are arrays; other tables are objects (empty unmarked table -> {}); nil and
// json.null -> null. Raises "json.encode: ..." on NaN/inf, cycles, functions, non-UTF-8 strings
// and keys that are not strings or numbers.
//   json.encode({a = {1, 2}}) == '{"a":[1,2]}'
int encode(lua_State* L) {
  lua_settop(L, 1);
  luaL_getmetatable(L, kArrayMetatable);
  luaL_getmetatable(L, kObjectMetatable);
  bool failed = false;
  {
    std::string result;
    try {
      result = Encoder(L, 2, 3).encode(1);
    } catch (const std::runtime_error& error) {
      result = error.what();
      failed = true;
    }
    lua_pushlstring(L, result.data(), result.size());
  }
  return failed ? lua_error(L) : 1;
}

}  // namespace

int open_json(lua_State* L) {
  const luaL_Reg functions[] = {
      {"decode", decode},           {"encode", encode},           {"python_json", python_json},
      {"python_repr", python_repr}, {"member_text", member_text}, {nullptr, nullptr},
  };
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  lua_pushlightuserdata(L, json_null());
  lua_setfield(L, -2, "null");
  // Kept in the registry so decode/encode find the same tables scripts compare against.
  luaL_newmetatable(L, kArrayMetatable);
  lua_setfield(L, -2, "array_mt");
  luaL_newmetatable(L, kObjectMetatable);
  lua_setfield(L, -2, "object_mt");
  return 1;
}

}  // namespace depot
