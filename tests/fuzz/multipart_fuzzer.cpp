// libFuzzer harness: the multipart parser, one body fed in several ways (targets.hpp).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  depot::fuzz::run_multipart_target({reinterpret_cast<const char*>(data), size});
  return 0;
}
