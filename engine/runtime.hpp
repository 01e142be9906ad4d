// One Lua state running one generation of the scripts on one worker: it loads the prelude and
// every service script, builds the router from their routes (refusing conflicts), and starts
// tasks (request handlers, timers, start hooks) in it. A runtime retired by a reload keeps
// running its in-flight tasks and is closed when the last one ends.
#pragma once

#include <functional>
#include <lua.hpp>
#include <memory>
#include <string>
#include <vector>

#include "bindings/binding.hpp"
#include "engine/generation.hpp"
#include "engine/lua_memory.hpp"
#include "engine/request_handler.hpp"
#include "engine/router.hpp"
#include "engine/task.hpp"

namespace depot {

class Worker;
class Exchange;
namespace metrics {
struct RouteSeries;
}

class Runtime final : public RequestHandler {
 public:
  // Throws std::runtime_error saying which script failed and why. Without a worker the runtime
  // is offline (admin commands): it serves nothing and its bindings block instead of waiting.
  Runtime(Worker* worker, std::shared_ptr<const Generation> generation);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  lua_State* state() const { return L_; }
  LuaMemory& memory() { return *memory_; }
  Worker& worker() { return *worker_; }
  const Generation& generation() const { return *generation_; }
  static Runtime& of_state(lua_State* L);

  // RequestHandler: routes the request and runs its handler as a task (404 / 405 without one).
  void start_request(const std::shared_ptr<Exchange>& exchange) override;
  // The owning service's error shape (its on_error), rendered in the main state; never yields.
  // The owner is the routed service, or for a request never routed the one its path names.
  ErrorAnswer render_error(const Exchange& exchange, int status, std::string_view message,
                           const char* allowed) override;
  // Runs a background task in this runtime; `push_call` pushes the function and its arguments.
  Task* spawn(Task::Kind kind, const Task::Pusher& push_call);
  // Like spawn, but errors raised by the function are logged with `what` instead of failing.
  Task* spawn_logged(Task::Kind kind, const char* what, const Task::Pusher& push_call);

  // Runs the admin command `name` of every service that defines it (service:command), in this
  // (offline) state. Returns how many services ran it; throws with the error of a failing one.
  int run_command(const std::string& name, const std::vector<std::string>& arguments);

  // What loading found that does not stop the generation, for the log and `depot check`.
  struct LoadNote {
    std::string service;
    std::string text;
  };
  // Services a configuration error left unmounted, with that error.
  const std::vector<LoadNote>& unmounted() const { return unmounted_; }
  // Keys of mounted services' config sections that no config getter read (typos, most often).
  const std::vector<LoadNote>& unread_settings() const { return unread_settings_; }

  // Starts serving: runs the services' on_start hooks.
  void activate();
  // A newer generation took over (or the server is stopping): run the retire callbacks
  // (timers are told they were cut short) and start nothing new.
  void retire();
  bool retired() const { return retired_; }
  void on_retire(std::function<void()> callback) {
    retire_callbacks_.push_back(std::move(callback));
  }

  // Coroutines for tasks, reused once they returned normally (creating one per request costs
  // more garbage-collector work than the rest of a small request). `ref` anchors it.
  lua_State* acquire_coroutine(int& ref);
  void release_coroutine(int ref, lua_State* coroutine, bool reusable);

  // limits.instruction_budget is set: the preemption hook is installed for good, to count.
  bool counts_instructions() const { return generation_->limits.instruction_budget > 0; }

  size_t task_count() const { return tasks_; }
  void task_started() { ++tasks_; }
  void task_ended() { --tasks_; }

 private:
  void load_services();
  void build_router();
  void find_unread_settings();
  int prelude_function(const char* name);
  // The metrics series of this generation's routes, and whether this runtime answers /metrics.
  void prepare_metrics();
  bool answers_scrape(const Exchange& exchange) const;
  void answer_scrape(Exchange& exchange);

  // What the engine needs of a route beyond the router: its name for the log, its deadline.
  struct RouteInfo {
    std::string description;
    std::chrono::milliseconds deadline;
    std::string label;                       // "GET /pattern", the route's name in metrics
    metrics::RouteSeries* series = nullptr;  // null offline
  };

  Worker* worker_;
  std::shared_ptr<const Generation> generation_;
  lua_State* L_;
  std::unique_ptr<LuaMemory> memory_;
  std::vector<std::vector<RouteInfo>> routes_;  // [service][route]
  std::vector<LoadNote> unmounted_;
  std::vector<LoadNote> unread_settings_;
  // Requests the router answers 404 or 405, by owning service ([services]: none owns the path).
  std::vector<metrics::RouteSeries*> unmatched_series_;
  metrics::RouteSeries* scrape_series_ = nullptr;  // null unless /metrics is served here
  BindingContext context_;
  Router router_;
  int prelude_ref_ = LUA_NOREF;
  int dispatch_ref_ = LUA_NOREF;
  int render_error_ref_ = LUA_NOREF;
  size_t tasks_ = 0;
  std::vector<std::pair<int, lua_State*>> idle_coroutines_;
  bool retired_ = false;
  std::vector<std::function<void()>> retire_callbacks_;
};

}  // namespace depot
