// BLAKE2b-512 throughput of libsodium called directly from C++: streamed in 64 KiB pieces, the
// reference for crypto.blake2b_stream from Lua (bench/bindings.sh).
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  if (sodium_init() < 0) return 1;
  std::vector<unsigned char> piece(64 * 1024);
  randombytes_buf(piece.data(), piece.size());
  const int pieces = 256 * 16;  // 256 MiB
  crypto_generichash_state state;
  unsigned char digest[64];
  auto start = std::chrono::steady_clock::now();
  crypto_generichash_init(&state, nullptr, 0, sizeof digest);
  for (int i = 0; i < pieces; ++i) crypto_generichash_update(&state, piece.data(), piece.size());
  crypto_generichash_final(&state, digest, sizeof digest);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.3f\n", piece.size() * static_cast<double>(pieces) / seconds / 1e9);
  return 0;
}
