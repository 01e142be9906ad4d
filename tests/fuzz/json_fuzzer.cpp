// libFuzzer harness: the json module's decoder and renderers (targets.hpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const depot::fuzz::JsonTarget target;
  target.run({reinterpret_cast<const char*>(data), size});
  return 0;
}
