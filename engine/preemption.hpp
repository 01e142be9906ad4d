// Stops runaway Lua without taxing code that behaves. LuaJIT sends every bytecode through its
// hook dispatcher once a count hook is installed, whatever the count, so no hook is installed
// normally. Each worker publishes in its PreemptionSlot which Lua state runs a task and when that
// task must be looked at (its cpu_slice ends, its deadline passes), with plain atomic stores; one
// watchdog thread per server reads the slots and signals the thread of a worker whose task is
// past that time. The signal handler installs the count hook on the state; the hook stops the
// task as it always did (preemption_hook), and the worker removes the hook when the run ends.
//
// Why a signal rather than lua_sethook from the watchdog thread under a lock: lua_sethook
// read-modify-writes g->hookmask, which the VM itself updates without any lock (hook_enter, the
// collector's finalizer flag), aborts a trace being recorded, and rewrites the dispatch table the
// interpreter reads at every instruction; no lock of ours covers the VM's own accesses. A handler
// on the worker's own thread runs between two machine instructions of the interpreter, which
// sees the new table once the handler returns: this is how LuaJIT's stand-alone interpreter cuts
// a script at Ctrl-C (luajit.c, laction). The only other lua_sethook on a published state is the
// worker's own disarm, which marks itself first so a handler arriving meanwhile does nothing:
// never two lua_sethook calls on one state at once.
//
// The signal is SIGURG, as Go preempts goroutines with it: ignored by default (a stray one kills
// nothing) and otherwise only sent for out-of-band TCP data to a socket's F_SETOWN owner, which
// Depot never sets. It is sent to one thread (tgkill), so other threads need not mask it; one
// that gets a stray SIGURG finds no slot and ignores it. The handler is installed with SA_RESTART,
// and Pistache's epoll_wait loop retries on EINTR; a worker sees the signal only while a task of
// it overran, or in the instant after such a task ended.
//
// Never: call lua_sethook on a published state but through disarm(); block in the handler.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <lua.hpp>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/options.hpp"
#include "engine/timer_queue.hpp"

namespace depot {

// VM instructions between two calls of the hook once it is installed: a few microseconds of
// interpreted code, so even the always-on hook (below) costs little beyond LuaJIT's dispatch.
constexpr int kPreemptionHookInterval = 10000;

// Installs the count hook for the life of the state: for a generation with an
// limits.instruction_budget, whose instructions must be counted from the first one.
void install_counting_hook(lua_State* L);

// What one worker runs now, for the watchdog. Written on the worker's thread only (and by the
// signal handler there), read by the watchdog thread.
class PreemptionSlot {
 public:
  struct Published {
    lua_State* state;
    Clock::rep check_at;
  };
  // A task's run begins: the hook is needed on `state` from `check_at` on (null: the state has
  // its own always-on hook, nothing to arm). Returns what was published before, for leave().
  Published enter(lua_State* state, Clock::time_point check_at);
  // The run ended: publishes `previous` again (the task whose run this one was nested in, or
  // nothing) and removes the hook if it was installed meanwhile.
  void leave(Published previous);
  // The running task's check time moved (depot.deadline).
  void reschedule(Clock::time_point check_at) {
    check_at_.store(check_at.time_since_epoch().count(), std::memory_order_release);
  }
  // Removes the hook if the handler installed it: the hook found nothing to stop (the signal was
  // meant for a task whose run has ended), so the tasks after it run hook-free.
  void disarm();

  // The slot of the task running on this thread; null outside a task's run.
  static PreemptionSlot* current();

 private:
  friend class PreemptionWatchdog;

  // Once per process, before the first signal is sent.
  static void install_signal_handler();
  static void on_signal(int);
  // In the signal handler: installs the hook on the published state (again, if a hook already
  // installed did not fire: an update of the VM that the signal interrupted may have undone it).
  void arm_from_signal();
  // Watchdog thread: signals the worker if its task is due; returns when to look again.
  Clock::time_point watch(Clock::time_point now, Clock::duration period);

  enum Arm : int { unarmed, armed, disarming };

  std::atomic<lua_State*> state_{nullptr};
  std::atomic<Clock::rep> check_at_{0};
  std::atomic<pid_t> thread_{0};
  // Only the worker's thread (its code and its signal handler) reads and writes these two.
  std::atomic<int> arm_{unarmed};
  lua_State* armed_state_ = nullptr;
  // Watchdog thread only: the check time it last signalled for, and when to signal it again.
  Clock::rep signalled_for_ = 0;
  Clock::time_point signal_again_at_;
};

// One per server: the thread that looks at every worker's slot. It sleeps until the earliest
// published check time, and at most `period` (period_for) so that it sees tasks that began
// meanwhile: a task is cut within the signal's delivery of its check time, or at worst one
// period after it began when its whole limit is shorter than a period.
class PreemptionWatchdog {
 public:
  PreemptionWatchdog(size_t workers, Clock::duration period);
  ~PreemptionWatchdog();
  PreemptionWatchdog(const PreemptionWatchdog&) = delete;
  PreemptionWatchdog& operator=(const PreemptionWatchdog&) = delete;

  PreemptionSlot& slot(size_t worker) { return slots_[worker]; }
  // A tenth of the smallest of cpu_slice and request_deadline, within 10..100 ms: ten wake-ups
  // a second at most when idle, and a cut that a small limit keeps close to it.
  static Clock::duration period_for(const Limits& limits);

 private:
  void run();

  std::unique_ptr<PreemptionSlot[]> slots_;
  size_t count_;
  Clock::duration period_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace depot
