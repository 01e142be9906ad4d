// Request/response state shared by a connection and its handler (see exchange.hpp).
#include "engine/exchange.hpp"

#include "engine/multipart_reader.hpp"

namespace depot {

const std::string* RequestHead::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

Exchange::Exchange() = default;
Exchange::~Exchange() = default;

bool Exchange::take_chunk(std::string& chunk) {
  if (body_chunks.empty()) return false;
  chunk = std::move(body_chunks.front());
  body_chunks.pop_front();
  body_buffered -= chunk.size();
  return true;
}

}  // namespace depot
