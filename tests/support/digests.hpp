// Reference digests for tests, computed by the libraries themselves (not by Depot's code), in the
// lowercase hex Depot answers with.
#pragma once

#include <sodium.h>
#include <xxhash.h>

#include <string>

namespace depot::testing {

// XXH3-128, big-endian as xxh128sum prints it (what fs.writer's hash = "xxh128" stores).
inline std::string xxh128_hex(const std::string& data) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(data.data(), data.size()));
  char hex[2 * sizeof canonical.digest + 1];
  sodium_bin2hex(hex, sizeof hex, canonical.digest, sizeof canonical.digest);
  return hex;
}

}  // namespace depot::testing
