// Pulls a request body through a MultipartParser for req:parts(): the parser's events are queued
// here (at most one body chunk's worth) until the handler asks for the next part or data.
#pragma once

#include <deque>
#include <string>

#include "engine/multipart_parser.hpp"

namespace depot {

class MultipartReader final : public MultipartParser::Sink {
 public:
  struct Event {
    enum class Kind { part_begin, data, part_end } kind;
    MultipartPart part;  // part_begin
    std::string data;    // data
  };

  explicit MultipartReader(std::string boundary) : parser_(std::move(boundary)) {}

  void feed(std::string_view chunk) { parser_.feed(chunk, *this); }
  void finish() const { parser_.finish(); }
  bool finished() const { return parser_.finished(); }
  std::deque<Event>& events() { return events_; }
  bool in_part = false;  // a part_begin was handed out and its part_end not yet

 private:
  void on_part_begin(MultipartPart part) override {
    events_.push_back(Event{Event::Kind::part_begin, std::move(part), {}});
  }
  void on_part_data(std::string_view data) override {
    if (!data.empty()) events_.push_back(Event{Event::Kind::data, {}, std::string(data)});
  }
  void on_part_end() override { events_.push_back(Event{Event::Kind::part_end, {}, {}}); }

  MultipartParser parser_;
  std::deque<Event> events_;
};

}  // namespace depot
