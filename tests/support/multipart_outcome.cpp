// Recording multipart parses for comparison (see multipart_outcome.hpp).
#include "tests/support/multipart_outcome.hpp"

#include <algorithm>
#include <random>
#include <sstream>

namespace depot::testing {
namespace {

class RecordingSink final : public MultipartParser::Sink {
 public:
  explicit RecordingSink(MultipartOutcome& outcome) : outcome_(outcome) {}

  void on_part_begin(MultipartPart part) override {
    if (in_part_) outcome_.sink_misuse += "begin inside a part; ";
    in_part_ = true;
    outcome_.parts.push_back(ParsedPart{std::move(part), {}});
  }
  void on_part_data(std::string_view data) override {
    if (!in_part_) {
      outcome_.sink_misuse += "data outside a part; ";
      return;
    }
    outcome_.parts.back().data.append(data);
  }
  void on_part_end() override {
    if (!in_part_) outcome_.sink_misuse += "end outside a part; ";
    in_part_ = false;
  }

 private:
  MultipartOutcome& outcome_;
  bool in_part_ = false;
};

}  // namespace

std::string describe(const MultipartOutcome& outcome) {
  std::ostringstream text;
  for (const ParsedPart& parsed : outcome.parts) {
    const MultipartPart& part = parsed.part;
    text << "part name=[" << part.name << "] filename=[" << part.filename
         << "] has_filename=" << part.has_filename << " content_type=[" << part.content_type
         << "]\n";
    for (auto& [name, value] : part.headers)
      text << "  header [" << name << "]=[" << value << "]\n";
    text << "  data(" << parsed.data.size() << ")=[" << parsed.data << "]\n";
  }
  text << "finished=" << outcome.finished << " error=[" << outcome.error << "] misuse=["
       << outcome.sink_misuse << "]\n";
  return text.str();
}

MultipartOutcome parse_in_pieces(std::string_view body, const std::vector<size_t>& piece_sizes,
                                 const std::string& boundary) {
  MultipartOutcome outcome;
  RecordingSink sink(outcome);
  MultipartParser parser(boundary);
  try {
    size_t offset = 0;
    for (size_t size : piece_sizes) {
      parser.feed(body.substr(offset, size), sink);
      offset += size;
    }
    outcome.finished = parser.finished();
    parser.finish();
  } catch (const MultipartError& error) {
    outcome.error = error.what();
  }
  return outcome;
}

std::vector<size_t> whole(std::string_view body) {
  return {body.size()};
}

std::vector<size_t> single_bytes(std::string_view body) {
  return std::vector<size_t>(body.size(), 1);
}

std::vector<size_t> random_pieces(std::string_view body, unsigned seed, size_t largest) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<size_t> size_of(1, largest);
  std::vector<size_t> sizes;
  for (size_t remaining = body.size(); remaining > 0;) {
    size_t size = std::min(remaining, size_of(random));
    sizes.push_back(size);
    remaining -= size;
  }
  return sizes;
}

}  // namespace depot::testing
