// Pulls a request body through a MultipartParser for req:parts(): the parser's events are queued
// here (at most one body chunk's worth) until the handler asks for the next part or data.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "engine/multipart_parser.hpp"

namespace depot {

class MultipartReader final : public MultipartParser::Sink {
 public:
  struct Event {
    enum class Kind { part_begin, data, part_end } kind;
    MultipartPart part;                        // part_begin
    std::shared_ptr<const std::string> owner;  // data: the body chunk (or copy) `data` lies in
    std::string_view data;
  };

  explicit MultipartReader(std::string boundary) : parser_(std::move(boundary)) {}

  // Data events point into `chunk` rather than copying it: an upload's bytes are copied once
  // less (into the Lua string only). The chunk lives as long as an event still needs it.
  void feed(std::string chunk) {
    input_ = std::make_shared<const std::string>(std::move(chunk));
    parser_.feed(*input_, *this);
    input_.reset();
  }
  void finish() const { parser_.finish(); }
  bool finished() const { return parser_.finished(); }
  std::deque<Event>& events() { return events_; }
  bool in_part = false;  // a part_begin was handed out and its part_end not yet

 private:
  void on_part_begin(MultipartPart part) override {
    events_.push_back(Event{Event::Kind::part_begin, std::move(part), {}, {}});
  }
  void on_part_data(std::string_view data) override {
    if (data.empty()) return;
    const char* begin = input_->data();
    if (data.data() >= begin && data.data() + data.size() <= begin + input_->size()) {
      events_.push_back(Event{Event::Kind::data, {}, input_, data});
      return;
    }
    // The parser's own carry (a held-back tail that was not a delimiter after all): copied.
    auto copy = std::make_shared<const std::string>(data);
    events_.push_back(Event{Event::Kind::data, {}, copy, *copy});
  }
  void on_part_end() override { events_.push_back(Event{Event::Kind::part_end, {}, {}, {}}); }

  MultipartParser parser_;
  std::shared_ptr<const std::string> input_;  // the chunk being fed
  std::deque<Event> events_;
};

}  // namespace depot
