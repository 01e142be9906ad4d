// Memory handed back after a spike. glibc's malloc keeps the pages of what a burst freed (2,000
// pipelining clients, 500 uploads at once: hundreds of MiB) mapped until something trims the heap;
// nothing in a server that goes quiet again would. See heap_trim.cpp for the rule.
#pragma once

namespace depot {

class ThreadPool;

namespace heap {

// From every worker's sweep (once a second): at most one check per second for the process, run on
// the pool, which trims the heap when the memory it holds unused grew by a spike since last time.
void trim_after_spike(ThreadPool& pool);

}  // namespace heap
}  // namespace depot
