// The rule of heap_trim.hpp. "Held unused" is the resident memory not in malloc's use: RSS minus
// the bytes allocated (mallinfo2). A spike's memory, once freed, stays resident and counts there;
// steady traffic reuses the same free chunks and leaves it flat. malloc_trim(0) returns the free
// pages of every arena when at least kSpike is held unused and that grew by kGrowth since the
// lowest it was after the last trim: memory trimming cannot give back (a mapped LMDB file's pages
// count as resident too) is not walked for again until more comes. Each trim walks the free chunks,
// on the pool, at most once a second.
#include "engine/heap_trim.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "engine/log.hpp"
#include "engine/thread_pool.hpp"

namespace depot::heap {
namespace {

constexpr size_t kSpike = size_t{32} << 20;
constexpr size_t kGrowth = size_t{8} << 20;

std::atomic<int64_t> last_check_second{0};
std::atomic<bool> checking{false};
// The lowest held unused since the last trim; the pool thread running a check owns it (`checking`).
size_t held_low = 0;

size_t resident_bytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int read = std::fscanf(statm, "%lu %lu", &size, &resident);
  std::fclose(statm);
  return read == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

size_t held_unused() {
  struct mallinfo2 info = mallinfo2();
  size_t in_use = info.uordblks + info.hblkhd;
  size_t resident = resident_bytes();
  return resident > in_use ? resident - in_use : 0;
}

void check() {
  size_t held = held_unused();
  held_low = std::min(held_low, held);
  if (held < kSpike || held < held_low + kGrowth) return;
  malloc_trim(0);
  held_low = held_unused();
  log::debug("heap trimmed after a spike",
             {{"held_before_mib", held >> 20}, {"held_after_mib", held_low >> 20}});
}

}  // namespace

void trim_after_spike(ThreadPool& pool) {
  int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  int64_t last = last_check_second.load(std::memory_order_relaxed);
  if (second == last || !last_check_second.compare_exchange_strong(last, second)) return;
  if (checking.exchange(true)) return;
  bool queued = pool.submit([] {
    check();
    checking.store(false);
  });
  if (!queued) checking.store(false);  // the pool is busy: the next sweep tries again
}

}  // namespace depot::heap
