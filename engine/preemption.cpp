// The preemption hook, armed on demand by a watchdog's signal (see preemption.hpp).
#include "engine/preemption.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "engine/task.hpp"

namespace depot {
namespace {
using namespace std::chrono_literals;

constexpr int kPreemptionSignal = SIGURG;

// Trivially constructed and destroyed, so the signal handler reads it without any TLS setup.
thread_local PreemptionSlot* current_slot = nullptr;

// Runs in every coroutine of the state while installed, also the ones a script creates (hooks are
// per state in LuaJIT), but never inside compiled traces (hence the JIT off by default). A task
// that must stop has its own coroutine yielded from the hook, which no pcall can catch; Task::run
// then ends it without resuming. Where that cannot be done (inside a coroutine the script
// created, under a C call such as table.sort's comparator) an error unwinds toward the task's
// coroutine instead, and the next hook there yields it: the hook stays installed until the run
// ends.
void preemption_hook(lua_State* L, lua_Debug*) {
  Task* task = Task::running_in(L);
  const char* reason = nullptr;
  if (task != nullptr) {
    task->instructions += kPreemptionHookInterval;
    reason = task->must_stop(Clock::now());
  }
  if (reason == nullptr) {
    if (PreemptionSlot* slot = PreemptionSlot::current()) slot->disarm();
    return;
  }
  if (L == task->coroutine() && lua_isyieldable(L)) {
    lua_yield(L, 0);  // does not return here
    return;
  }
  luaL_error(L, "%s", reason);
}

// Once per thread, as both are system calls. A thread inherits its creator's signal mask, and an
// embedding program that blocks SIGURG would leave the watchdog's signals pending forever.
void bind_this_thread(pid_t& id) {
  sigset_t preemption;
  sigemptyset(&preemption);
  sigaddset(&preemption, kPreemptionSignal);
  pthread_sigmask(SIG_UNBLOCK, &preemption, nullptr);
  id = ::gettid();
}
}  // namespace

void install_counting_hook(lua_State* L) {
  lua_sethook(L, preemption_hook, LUA_MASKCOUNT, kPreemptionHookInterval);
}

PreemptionSlot* PreemptionSlot::current() {
  return current_slot;
}

PreemptionSlot::Published PreemptionSlot::enter(lua_State* state, Clock::time_point check_at) {
  thread_local pid_t this_thread = 0;
  if (this_thread == 0) bind_this_thread(this_thread);
  current_slot = this;
  thread_.store(this_thread, std::memory_order_relaxed);
  Published previous{state_.load(std::memory_order_relaxed),
                     check_at_.load(std::memory_order_relaxed)};
  check_at_.store(check_at.time_since_epoch().count(), std::memory_order_relaxed);
  state_.store(state, std::memory_order_release);  // the watchdog reads check_at_ after it
  return previous;
}

void PreemptionSlot::leave(Published previous) {
  // Unpublished before the hook is removed: a signal arriving in between finds nothing to arm.
  state_.store(previous.state, std::memory_order_release);
  check_at_.store(previous.check_at, std::memory_order_relaxed);
  disarm();
  if (previous.state == nullptr) current_slot = nullptr;
}

void PreemptionSlot::disarm() {
  if (arm_.load(std::memory_order_relaxed) != armed) return;
  arm_.store(disarming);  // seq_cst: before lua_sethook begins, for a handler interrupting it
  lua_sethook(armed_state_, nullptr, 0, 0);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  arm_.store(unarmed, std::memory_order_relaxed);
}

void PreemptionSlot::install_signal_handler() {
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(kPreemptionSignal, &action, nullptr) == 0;
  }();
  (void)installed;
}

void PreemptionSlot::on_signal(int) {
  int saved_errno = errno;  // the interrupted code may be between a system call and its errno
  if (PreemptionSlot* slot = current_slot) slot->arm_from_signal();
  errno = saved_errno;
}

void PreemptionSlot::arm_from_signal() {
  lua_State* state = state_.load(std::memory_order_relaxed);
  if (state == nullptr) return;
  switch (arm_.load(std::memory_order_relaxed)) {
    case disarming:
      return;
    case armed:
      // Installed, yet the task is still due: cleared first so that LuaJIT rebuilds its whole
      // dispatch table, whatever the interrupted update left.
      lua_sethook(armed_state_, nullptr, 0, 0);
      break;
    default:
      arm_.store(armed, std::memory_order_relaxed);
      break;
  }
  armed_state_ = state;
  lua_sethook(state, preemption_hook, LUA_MASKCOUNT, kPreemptionHookInterval);
}

Clock::time_point PreemptionSlot::watch(Clock::time_point now, Clock::duration period) {
  if (state_.load(std::memory_order_acquire) == nullptr) return Clock::time_point::max();
  Clock::rep check_at = check_at_.load(std::memory_order_relaxed);
  Clock::time_point due{Clock::duration(check_at)};
  if (now < due) return due;
  // Signalled already: again only once a period passed (the hook should have cut it by then).
  if (check_at == signalled_for_ && now < signal_again_at_) return signal_again_at_;
  pid_t thread = thread_.load(std::memory_order_relaxed);
  // A thread that ended since has no such id any more (ESRCH), or one that a new thread of this
  // process took, whose handler finds nothing due: either way harmless.
  if (thread != 0) ::tgkill(::getpid(), thread, kPreemptionSignal);
  signalled_for_ = check_at;
  signal_again_at_ = now + period;
  return signal_again_at_;
}

PreemptionWatchdog::PreemptionWatchdog(size_t workers, Clock::duration period)
    : slots_(std::make_unique<PreemptionSlot[]>(workers)), count_(workers), period_(period) {
  PreemptionSlot::install_signal_handler();
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "depot-watchdog");
}

PreemptionWatchdog::~PreemptionWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Clock::duration PreemptionWatchdog::period_for(const Limits& limits) {
  std::chrono::milliseconds smallest = 1s;
  for (std::chrono::milliseconds limit : {limits.cpu_slice, limits.request_deadline}) {
    if (limit.count() > 0) smallest = std::min(smallest, limit);
  }
  return std::clamp<Clock::duration>(smallest / 10, 10ms, 100ms);
}

void PreemptionWatchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    Clock::time_point now = Clock::now();
    Clock::time_point wake = now + period_;
    for (size_t i = 0; i < count_; ++i) wake = std::min(wake, slots_[i].watch(now, period_));
    wake_.wait_until(lock, wake);
  }
}

}  // namespace depot
