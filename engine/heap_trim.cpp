// The rule of heap_trim.hpp. "Held unused" is the resident memory not in malloc's use: RSS minus
// the bytes allocated (mallinfo2). It grows when a spike's memory is freed but stays mapped, and
// only then: steady traffic reuses the same free chunks. When it has grown by kSpike since the
// last trim (or its lowest since), malloc_trim(0) returns the free pages of every arena; what it
// costs (a walk of the free chunks) is paid on the pool, at most once per spike.
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

std::atomic<int64_t> last_check_second{0};
std::atomic<bool> checking{false};
// The pool thread running a check owns it (`checking`). SIZE_MAX: no sample yet.
size_t held_baseline = SIZE_MAX;

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
  if (held_baseline == SIZE_MAX || held < held_baseline + kSpike) {
    held_baseline = std::min(held_baseline, held);
    return;
  }
  malloc_trim(0);
  held_baseline = held_unused();
  log::debug("heap trimmed after a spike",
             {{"held_before_mib", held >> 20}, {"held_after_mib", held_baseline >> 20}});
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
