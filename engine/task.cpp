// Coroutines run by the engine (see task.hpp).
#include "engine/task.hpp"

#include <algorithm>

#include "bindings/binding.hpp"
#include "engine/error_answer.hpp"
#include "engine/exchange.hpp"
#include "engine/log.hpp"
#include "engine/lua_memory.hpp"
#include "engine/preemption.hpp"
#include "engine/runtime.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {
uint64_t next_task_id() {
  thread_local uint64_t counter = 0;
  return ++counter;
}
const std::string kNoRequestId;
}  // namespace

Task::Task(Runtime& runtime, Kind kind, std::shared_ptr<Exchange> exchange)
    : runtime_(runtime), kind_(kind), exchange_(std::move(exchange)), id_(next_task_id()) {
  coroutine_ = runtime_.acquire_coroutine(coroutine_ref_);
  runtime_.task_started();
  if (exchange_) exchange_->attach_task(id_);
}

// An unfinished task is only destroyed with its worker, whose Lua states close right after.
Task::~Task() = default;

const std::string& Task::request_id() const {
  return exchange_ ? exchange_->id() : kNoRequestId;
}

Task* Task::running_in(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "depot.binding_context");
  auto* context = static_cast<BindingContext*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (context == nullptr || context->worker == nullptr) return nullptr;
  Task* task = context->worker->running_task();
  return task != nullptr && &task->runtime_ == context->runtime ? task : nullptr;
}

Task* Task::of_state(lua_State* L) {
  Task* task = running_in(L);
  return task != nullptr && task->coroutine_ == L ? task : nullptr;
}

void Task::set_deadline(std::chrono::milliseconds span, Clock::time_point now) {
  deadline_span_ = span;
  deadline_ = span.count() > 0 ? now + span : Clock::time_point::max();
  body_seen_ = exchange_ ? exchange_->body_received() : 0;
  Worker& worker = runtime_.worker();
  if (worker.running_task() == this) worker.preemption().reschedule(check_at());  // depot.deadline
}

Clock::time_point Task::check_at() const {
  std::chrono::milliseconds slice = runtime_.generation().limits.cpu_slice;
  return slice.count() > 0 ? std::min(deadline_, running_since_ + slice) : deadline_;
}

bool Task::overdue(Clock::time_point now) {
  if (deadline_span_.count() <= 0) return false;
  if (exchange_) {
    if (exchange_->handler_waits_on_client() || exchange_->body_received() != body_seen_) {
      body_seen_ = exchange_->body_received();
      deadline_ = now + deadline_span_;
      return false;
    }
  }
  return deadline_ <= now;
}

const char* Task::must_stop(Clock::time_point now) {
  if (stop_reason_ != nullptr) return stop_reason_;
  const Limits& limits = runtime_.generation().limits;
  if (limits.instruction_budget > 0 && instructions > limits.instruction_budget) {
    stop_reason_ = "instruction budget exceeded";
    stop_status_ = 500;
  } else if (now >= deadline_) {
    stop_reason_ = is_request() ? "request deadline exceeded" : "deadline exceeded";
    stop_status_ = 503;
  } else if (limits.cpu_slice.count() > 0 && now - running_since_ > limits.cpu_slice) {
    stop_reason_ = "ran longer than limits.cpu_slice without waiting";
    stop_status_ = 503;
  }
  return stop_reason_;
}

Task& Task::require(lua_State* L, const char* function) {
  Task* task = of_state(L);
  if (task == nullptr) {
    require_serving(L, function);
    luaL_error(L,
               "%s: can only wait inside a request handler, timer or job, and not inside a "
               "coroutine the script created itself",
               function);
  }
  return *task;
}

void Task::start(const Pusher& push_call) {
  int count = push_call(coroutine_);
  run(count - 1);
}

int Task::suspend(lua_State* L) {
  suspended_ = true;
  return lua_yield(L, 0);
}

void Task::resume(const Pusher& push) {
  if (finished_ || !suspended_) return;
  if (runtime_.worker().running_task() != nullptr) {
    // Never resume one coroutine from inside another: do it once the running one yields.
    uint64_t id = id_;
    Worker& worker = runtime_.worker();
    worker.defer([&worker, id, push] {
      if (Task* task = worker.find_task(id)) task->resume(push);
    });
    return;
  }
  int count = push(coroutine_);
  if (count < 0) return;  // what it waits for has not happened yet
  suspended_ = false;
  run(count);
}

void Task::run(int argument_count) {
  Worker& worker = runtime_.worker();
  Task* outer = worker.running_task();
  worker.set_running_task(this);
  running_since_ = Clock::now();
  // A state that counts instructions has its hook installed for good: nothing for the watchdog.
  PreemptionSlot::Published previous = worker.preemption().enter(
      runtime_.counts_instructions() ? nullptr : runtime_.state(), check_at());
  int status;
  {
    LuaMemory::Enforced enforced(runtime_.memory());
    status = lua_resume(coroutine_, argument_count);
  }
  worker.preemption().leave(previous);
  worker.set_running_task(outer);
  if (stop_reason_ != nullptr && status != 0) {
    // The preemption hook yielded the coroutine (or its error escaped every pcall): it never runs
    // again.
    abort(stop_status_, stop_reason_);
  } else if (status == LUA_YIELD) {
    if (!suspended_)
      finish("the script yielded outside a Depot call (coroutine.yield at the top of a handler?)");
  } else if (status == 0) {
    finish(nullptr);
  } else {
    const char* message = lua_tostring(coroutine_, -1);
    luaL_traceback(runtime_.state(), coroutine_,
                   message ? message : "(error object is not a string)", 0);
    std::string text = lua_tostring(runtime_.state(), -1);
    lua_pop(runtime_.state(), 1);
    finish(text.c_str());
  }
  if (stop_reason_ != nullptr || runtime_.memory().refused()) runtime_.memory().collect();
}

void Task::abort(int status, const std::string& message) {
  if (finished_) return;
  if (exchange_ && !exchange_->client_gone()) {
    if (!exchange_->response_started()) {
      error_answer::send(&runtime_, *exchange_, status, message);
    } else {
      exchange_->abort_response();
    }
  }
  log::warn(
      "task aborted",
      {{"request_id", request_id()}, {"route", route}, {"status", status}, {"reason", message}});
  finish(nullptr);
}

void Task::finish(const char* error) {
  if (finished_) return;
  finished_ = true;
  suspended_ = false;
  if (error != nullptr) {
    log::error("lua error", {{"request_id", request_id()}, {"route", route}, {"error", error}});
    if (exchange_) error_answer::send(&runtime_, *exchange_, 500, "internal server error");
  }
  // A coroutine that returned normally can run the next task; one that failed or was cut short
  // while suspended cannot.
  runtime_.release_coroutine(coroutine_ref_, coroutine_,
                             error == nullptr && lua_status(coroutine_) == 0);
  coroutine_ref_ = LUA_NOREF;
  runtime_.task_ended();
  if (exchange_) exchange_->handler_finished();
  runtime_.worker().remove_task(id_);
}

}  // namespace depot
