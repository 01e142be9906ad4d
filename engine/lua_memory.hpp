// The memory cap of one Lua state (limits.lua_memory). It wraps the state's own allocator
// (LuaJIT's, kept because it is faster than malloc for Lua's small blocks) and refuses to grow
// the state past the cap, which LuaJIT turns into a "not enough memory" error in the Lua code
// that allocated. Debian's LuaJIT is built with LJ_GC64, so a custom allocator is allowed on
// x86_64 (non-GC64 builds refuse one: lua_newstate returns NULL there).
//
// The cap is enforced only while Lua code runs under a protected call (a task's lua_resume, a
// script loading): the engine also pushes values into states outside any protection (results of
// a wait, coroutines, tracebacks), and a refusal there would be a panic that ends the process.
// Those pushes are small and bounded; the cap may be passed by them, never by scripts.
//
// It counts garbage not yet collected too: LuaJIT collects incrementally, so keep live data
// well under the cap. After a refusal the failing code may use an eighth more to handle the
// error, until the owner runs a full collection (collect) when that code yields or ends.
#pragma once

#include <cstddef>
#include <lua.hpp>

namespace depot {

class LuaMemory {
 public:
  // Wraps the allocator of `L` (cap 0: unlimited, counting only). Call restore() before
  // lua_close: LuaJIT releases its allocator's arena only when the state closes with it.
  LuaMemory(lua_State* L, size_t cap);
  LuaMemory(const LuaMemory&) = delete;
  LuaMemory& operator=(const LuaMemory&) = delete;
  void restore();

  size_t used() const { return used_; }
  size_t cap() const { return cap_; }

  // While one exists, allocations past the cap fail (nested guards are fine).
  class Enforced {
   public:
    explicit Enforced(LuaMemory& memory) : memory_(memory) { ++memory_.enforcing_; }
    ~Enforced() { --memory_.enforcing_; }
    Enforced(const Enforced&) = delete;
    Enforced& operator=(const Enforced&) = delete;

   private:
    LuaMemory& memory_;
  };

  // Whether an allocation was refused since the last collect().
  bool refused() const { return refused_; }
  // Collects the state fully, at once: after code that hit the cap, or runaway code that was
  // stopped, has ended, what it held is garbage the incremental collector would free only late.
  void collect();

 private:
  static void* allocate(void* self, void* block, size_t old_size, size_t new_size);

  lua_State* L_;
  lua_Alloc base_;
  void* base_state_;
  size_t used_;
  size_t cap_;
  int enforcing_ = 0;
  bool refused_ = false;
};

}  // namespace depot
