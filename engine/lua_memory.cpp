// A Lua state's allocator with a cap (see lua_memory.hpp).
#include "engine/lua_memory.hpp"

#include "engine/log.hpp"

namespace depot {

LuaMemory::LuaMemory(lua_State* L, size_t cap) : L_(L), cap_(cap) {
  base_ = lua_getallocf(L, &base_state_);
  used_ = static_cast<size_t>(lua_gc(L, LUA_GCCOUNT, 0)) * 1024 +
          static_cast<size_t>(lua_gc(L, LUA_GCCOUNTB, 0));
  lua_setallocf(L, allocate, this);
}

void LuaMemory::restore() {
  lua_setallocf(L_, base_, base_state_);
}

void* LuaMemory::allocate(void* self, void* block, size_t old_size, size_t new_size) {
  auto* memory = static_cast<LuaMemory*>(self);
  // Shrinking must never fail (Lua relies on it); only growth is checked against the cap. After a
  // refusal, until the state is collected, an eighth more is allowed: what the refused memory
  // held is garbage LuaJIT does not collect on the spot, and the code handling the error (a
  // traceback, a pcall's caller, the error answer) needs some.
  size_t limit = memory->refused_ ? memory->cap_ + memory->cap_ / 8 : memory->cap_;
  if (new_size > old_size && memory->cap_ > 0 && memory->enforcing_ > 0 &&
      memory->used_ + (new_size - old_size) > limit) {
    memory->refused_ = true;
    return nullptr;
  }
  void* result = memory->base_(memory->base_state_, block, old_size, new_size);
  if (result != nullptr || new_size == 0) memory->used_ = memory->used_ - old_size + new_size;
  return result;
}

void LuaMemory::collect() {
  size_t before = used_;
  lua_gc(L_, LUA_GCCOLLECT, 0);
  if (refused_) {
    log::warn("lua memory limit reached; state collected",
              {{"limit_bytes", cap_}, {"before_bytes", before}, {"after_bytes", used_}});
  }
  refused_ = false;
}

}  // namespace depot
