// A generation's Lua state on one worker (see runtime.hpp).
#include "engine/runtime.hpp"

#include <luajit.h>

#include <algorithm>

#include "engine/embedded_lua.hpp"
#include "engine/error_answer.hpp"
#include "engine/exchange.hpp"
#include "engine/log.hpp"
#include "engine/lua_api.hpp"
#include "engine/metrics.hpp"
#include "engine/metrics_text.hpp"
#include "engine/preemption.hpp"
#include "engine/server_core.hpp"
#include "engine/spec_files.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {
const char* const kRuntimeKey = "depot.runtime";

int traceback(lua_State* L) {
  if (lua_istable(L, 1)) {  // a configuration error (see bindings/config.lua) keeps its shape
    lua_getfield(L, 1, "config_error");
    bool config_error = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (config_error) return 1;
  }
  const char* message = lua_tostring(L, 1);
  luaL_traceback(L, L, message ? message : "(error object is not a string)", 1);
  return 1;
}

// A script's top level runs outside any task, on the thread building the runtime, with nothing to
// yield to: past limits.load_deadline the hook raises an error, and from then on it does so at
// every instruction, so a pcall inside the script cannot catch it and loop on (`while true do
// pcall(f) end` fails at its next `pcall`). The load fails; for a reload the previous generation
// keeps serving. Loading is rare, so this hook is always on while it lasts, unlike the preemption
// hook of tasks, which a watchdog installs only on a task that overran (preemption.hpp).
thread_local Clock::time_point load_deadline = Clock::time_point::max();

void load_deadline_hook(lua_State* L, lua_Debug*) {
  if (Clock::now() < load_deadline) return;
  lua_sethook(L, load_deadline_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "loading took longer than limits.load_deadline");
}

// Arms the load deadline for one script's top level, and leaves the state without a hook.
class LoadDeadline {
 public:
  LoadDeadline(lua_State* L, std::chrono::milliseconds span) : L_(L) {
    if (span.count() <= 0) return;
    load_deadline = Clock::now() + span;
    lua_sethook(L_, load_deadline_hook, LUA_MASKCOUNT, kPreemptionHookInterval);
  }
  ~LoadDeadline() {
    load_deadline = Clock::time_point::max();
    lua_sethook(L_, nullptr, 0, 0);
  }

 private:
  lua_State* L_;
};

std::filesystem::path script_file(const Generation& generation, const ServiceSpec& spec) {
  std::filesystem::path path =
      spec.script.is_absolute() ? spec.script : generation.scripts_dir / spec.script;
  if (std::filesystem::is_directory(path)) path /= "init.lua";
  return path;
}

void push_json(lua_State* L, const nlohmann::json& value);

void push_json_object(lua_State* L, const nlohmann::json& value) {
  lua_createtable(L, 0, static_cast<int>(value.size()));
  for (auto& [key, item] : value.items()) {
    push_json(L, item);
    lua_setfield(L, -2, key.c_str());
  }
}

// Service config sections reach Lua as plain tables (null becomes nil).
void push_json(lua_State* L, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object:
      push_json_object(L, value);
      break;
    case nlohmann::json::value_t::array: {
      lua_createtable(L, static_cast<int>(value.size()), 0);
      int index = 1;
      for (const auto& item : value) {
        push_json(L, item);
        lua_rawseti(L, -2, index++);
      }
      break;
    }
    case nlohmann::json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      lua_pushlstring(L, text.data(), text.size());
      break;
    }
    case nlohmann::json::value_t::boolean:
      lua_pushboolean(L, value.get<bool>());
      break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      lua_pushnumber(L, value.get<double>());
      break;
    default:
      lua_pushnil(L);
      break;
  }
}
}  // namespace

Runtime::Runtime(Worker* worker, std::shared_ptr<const Generation> generation)
    : worker_(worker), generation_(std::move(generation)), L_(luaL_newstate()) {
  if (L_ == nullptr) throw std::runtime_error("cannot create a Lua state (out of memory)");
  memory_ = std::make_unique<LuaMemory>(L_, generation_->limits.lua_memory);
  const bool jit = std::any_of(generation_->services.begin(), generation_->services.end(),
                               [](const ServiceSpec& spec) { return spec.jit; });
  try {
    luaL_openlibs(L_);
    if (!jit) luaJIT_setmode(L_, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    context_.data_dir = generation_->data_dir;
    context_.config = generation_->config;
    context_.worker = worker_;
    context_.runtime = this;
    set_binding_context(L_, &context_);
    lua_pushlightuserdata(L_, this);
    lua_setfield(L_, LUA_REGISTRYINDEX, kRuntimeKey);
    open_bindings(L_);

    const std::string scripts = generation_->scripts_dir.string();
    lua_getglobal(L_, "package");
    std::string path = scripts + "/lib/?.lua;" + scripts + "/lib/?/init.lua;" + scripts +
                       "/?.lua;" + scripts + "/?/init.lua;";
    lua_getfield(L_, -1, "path");
    path += lua_tostring(L_, -1);
    lua_pop(L_, 1);
    lua_pushstring(L_, path.c_str());
    lua_setfield(L_, -2, "path");
    lua_pop(L_, 1);

    std::string_view prelude = embedded_lua("prelude");
    lua_pushcfunction(L_, traceback);
    if (luaL_loadbuffer(L_, prelude.data(), prelude.size(), "=prelude") != 0) {
      throw std::runtime_error(std::string("prelude: ") + lua_tostring(L_, -1));
    }
    push_exchange_api(L_, generation_->limits, worker_);
    if (lua_pcall(L_, 1, 1, -3) != 0)
      throw std::runtime_error(std::string("prelude: ") + lua_tostring(L_, -1));
    prelude_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
    lua_pop(L_, 1);
    register_depot_module(L_, prelude_ref_);
    dispatch_ref_ = prelude_function("dispatch");
    render_error_ref_ = prelude_function("render_error");

    load_services();
    build_router();
    prepare_metrics();
    if (counts_instructions()) install_counting_hook(L_);
  } catch (...) {
    memory_->restore();
    lua_close(L_);
    throw;
  }
}

Runtime::~Runtime() {
  memory_->restore();
  lua_close(L_);
}

Runtime& Runtime::of_state(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kRuntimeKey);
  auto* runtime = static_cast<Runtime*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (runtime == nullptr) luaL_error(L, "depot: this Lua state is not a Depot runtime");
  return *runtime;
}

int Runtime::prelude_function(const char* name) {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
  lua_getfield(L_, -1, name);
  int ref = luaL_ref(L_, LUA_REGISTRYINDEX);
  lua_pop(L_, 1);
  return ref;
}

void Runtime::load_services() {
  for (const ServiceSpec& spec : generation_->services) {
    std::filesystem::path file = script_file(*generation_, spec);
    if (is_spec_name(file.filename().native())) {
      throw std::runtime_error("service " + spec.name + ": " + file.string() +
                               " is a spec, not a route script (run it with depot test)");
    }
    lua_settop(L_, 0);
    lua_pushcfunction(L_, traceback);
    if (luaL_loadfile(L_, file.c_str()) != 0) {
      throw std::runtime_error("service " + spec.name + ": " + lua_tostring(L_, -1));
    }
    // Another service turned the JIT on for this state: this one's own code stays interpreted.
    if (!spec.jit) luaJIT_setmode(L_, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
    lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
    lua_getfield(L_, -1, "new_service");
    lua_remove(L_, -2);
    lua_pushstring(L_, spec.name.c_str());
    push_json(L_, spec.config);
    lua_createtable(L_, static_cast<int>(spec.mounts.size()), 0);
    for (size_t i = 0; i < spec.mounts.size(); ++i) {
      lua_pushstring(L_, spec.mounts[i].c_str());
      lua_rawseti(L_, -2, static_cast<int>(i + 1));
    }
    lua_call(L_, 3, 1);  // the service object, passed to the script as `...`
    lua_pushvalue(L_, -1);
    lua_insert(L_, 1);  // keep the service object below the traceback function
    int status;
    {
      LuaMemory::Enforced enforced(*memory_);
      LoadDeadline deadline(L_, generation_->limits.load_deadline);
      status = lua_pcall(L_, 1, 0, 2);
    }
    if (status != 0) {
      if (!lua_istable(L_, -1))
        throw std::runtime_error("service " + spec.name + ": " + lua_tostring(L_, -1));
      lua_getfield(L_, -1, "message");
      std::string reason = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "configuration error";
      lua_pushboolean(L_, 1);
      lua_setfield(L_, 1, "disabled");
      unmounted_.push_back({spec.name, reason});
      if (worker_ == nullptr || worker_->index() == 0)
        log::warn("service not mounted", {{"service", spec.name}, {"reason", reason}});
    }
  }
  lua_settop(L_, 0);
  if (memory_->refused()) memory_->collect();
  find_unread_settings();
}

void Runtime::find_unread_settings() {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
  lua_getfield(L_, -1, "unread_settings");
  lua_call(L_, 0, 1);
  size_t count = lua_objlen(L_, -1);
  for (size_t i = 1; i <= count; ++i) {
    lua_rawgeti(L_, -1, static_cast<int>(i));
    lua_rawgeti(L_, -1, 1);
    lua_rawgeti(L_, -2, 2);
    unread_settings_.push_back({lua_tostring(L_, -2), lua_tostring(L_, -1)});
    lua_pop(L_, 3);
  }
  lua_settop(L_, 0);
  if (worker_ != nullptr && worker_->index() != 0) return;
  for (const LoadNote& note : unread_settings_) {
    log::warn("setting not read by its service (misspelt?)",
              {{"service", note.service}, {"key", note.text}});
  }
}

void Runtime::build_router() {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
  lua_getfield(L_, -1, "services");
  lua_call(L_, 0, 1);
  size_t service_count = lua_objlen(L_, -1);
  routes_.resize(service_count);
  for (size_t s = 0; s < service_count; ++s) {
    const ServiceSpec& spec = generation_->services[s];
    lua_rawgeti(L_, -1, static_cast<int>(s + 1));
    lua_getfield(L_, -1, "disabled");
    bool disabled = lua_toboolean(L_, -1);
    lua_pop(L_, 1);
    if (disabled) {
      lua_pop(L_, 1);
      continue;
    }
    lua_getfield(L_, -1, "routes");
    size_t route_count = lua_objlen(L_, -1);
    for (size_t r = 0; r < route_count; ++r) {
      lua_rawgeti(L_, -1, static_cast<int>(r + 1));
      lua_getfield(L_, -1, "method");
      std::string method = lua_tostring(L_, -1);
      lua_getfield(L_, -2, "pattern");
      std::string pattern = lua_tostring(L_, -1);
      lua_getfield(L_, -3, "options");
      lua_getfield(L_, -1, "deadline");  // seconds, checked by Service:route; nil: the server's
      std::chrono::milliseconds deadline =
          lua_isnumber(L_, -1)
              ? std::chrono::milliseconds(static_cast<int64_t>(lua_tonumber(L_, -1) * 1000))
              : generation_->limits.request_deadline;
      lua_pop(L_, 1);
      // Only under some of the service's mounts (checked by Service:route): the API pages of a
      // prefix that several services share are served by one of them.
      std::vector<std::string> mounts;
      lua_getfield(L_, -1, "mounts");
      for (size_t m = 1; lua_istable(L_, -1) && m <= lua_objlen(L_, -1); ++m) {
        lua_rawgeti(L_, -1, static_cast<int>(m));
        mounts.emplace_back(lua_tostring(L_, -1));
        lua_pop(L_, 1);
      }
      if (!lua_istable(L_, -1)) mounts = spec.mounts;
      lua_pop(L_, 5);
      routes_[s].push_back(
          RouteInfo{spec.name + ": " + method + " " + pattern, deadline, method + " " + pattern});
      for (const std::string& mount : mounts) {
        std::string full = Router::join(mount, pattern);
        router_.add(method, full, RouteTarget{static_cast<uint32_t>(s), static_cast<uint32_t>(r)},
                    spec.name + ": " + method + " " + full);
      }
    }
    lua_pop(L_, 2);
    for (const std::string& mount : spec.mounts) router_.add_mount(mount, static_cast<uint32_t>(s));
  }
  lua_settop(L_, 0);
}

void Runtime::prepare_metrics() {
  if (worker_ == nullptr) return;
  metrics::WorkerMetrics& metrics = worker_->metrics();
  const std::vector<ServiceSpec>& services = generation_->services;
  for (size_t s = 0; s < routes_.size(); ++s) {
    for (RouteInfo& route : routes_[s])
      route.series = &metrics.route(services[s].name, route.label);
  }
  for (const ServiceSpec& spec : services)
    unmatched_series_.push_back(&metrics.route(spec.name, "unmatched"));
  unmatched_series_.push_back(&metrics.route("none", "unmatched"));
  const MetricsOptions& options = worker_->core().options().metrics;
  if (!options.enabled || !options.listen.empty()) return;
  // A service's own route for the path wins over the engine's endpoint; either way it is said.
  RouteMatch match = router_.match("GET", metrics::kPath);
  bool taken = match.kind != RouteMatch::Kind::not_found;
  if (!taken) scrape_series_ = &metrics.route("depot", std::string("GET ") + metrics::kPath);
  if (worker_->index() != 0 || match.service < 0) return;
  const std::string& owner = services[static_cast<size_t>(match.service)].name;
  if (taken) {
    log::warn(
        "metrics not served on the main listener: a route of the service answers GET /metrics",
        {{"service", owner}, {"hint", "set metrics.listen to serve them on an admin listener"}});
  } else {
    log::info("metrics served at /metrics, inside the namespace of a service without a route there",
              {{"service", owner}});
  }
}

bool Runtime::answers_scrape(const Exchange& exchange) const {
  const RequestHead& head = exchange.head();
  return scrape_series_ != nullptr && head.path == metrics::kPath &&
         (head.method == "GET" || head.method == "HEAD");
}

void Runtime::answer_scrape(Exchange& exchange) {
  worker_->metrics().request_started(exchange, *scrape_series_);
  exchange.respond(200, {{"content-type", metrics::kContentType}},
                   metrics::render(worker_->core()));
  exchange.handler_finished();
}

void Runtime::start_request(const std::shared_ptr<Exchange>& exchange) {
  const RequestHead& head = exchange->head();
  RouteMatch match = router_.match(head.method, head.path);
  exchange->set_service(match.service);
  if (match.kind == RouteMatch::Kind::not_found && answers_scrape(*exchange))
    return answer_scrape(*exchange);
  if (match.kind != RouteMatch::Kind::found) {
    worker_->metrics().request_started(
        *exchange, *unmatched_series_[match.service >= 0 ? static_cast<size_t>(match.service)
                                                         : unmatched_series_.size() - 1]);
    bool not_allowed = match.kind == RouteMatch::Kind::method_not_allowed;
    error_answer::send(this, *exchange, not_allowed ? 405 : 404,
                       not_allowed ? "method not allowed" : "not found",
                       not_allowed ? match.allowed.c_str() : nullptr);
    exchange->handler_finished();
    return;
  }
  auto owned = std::make_unique<Task>(*this, Task::Kind::request, exchange);
  Task* task = owned.get();
  worker_->add_task(std::move(owned));
  const RouteInfo& route = routes_[match.target.service][match.target.route];
  worker_->metrics().request_started(*exchange, *route.series);
  task->route = route.description;
  task->set_deadline(route.deadline, worker_->now());
  task->start([&](lua_State* co) {
    lua_rawgeti(co, LUA_REGISTRYINDEX, dispatch_ref_);  // dispatch(service, route, exchange, ...)
    lua_pushinteger(co, match.target.service + 1);
    lua_pushinteger(co, match.target.route + 1);
    lua_pushnumber(co, static_cast<lua_Number>(task->id()));
    lua_pushlstring(co, head.method.data(), head.method.size());
    lua_pushlstring(co, head.path.data(), head.path.size());
    lua_pushlstring(co, exchange->id().data(), exchange->id().size());
    lua_createtable(co, 0, static_cast<int>(match.params.size()));
    for (const auto& [name, value] : match.params) {
      lua_pushlstring(co, value.data(), value.size());
      lua_setfield(co, -2, name.c_str());
    }
    return 8;
  });
}

RequestHandler::ErrorAnswer Runtime::render_error(const Exchange& exchange, int status,
                                                  std::string_view message, const char* allowed) {
  int service = exchange.service();
  if (service < 0 && !exchange.head().path.empty()) {
    service = router_.match(exchange.head().method, exchange.head().path).service;
  }
  const std::string& id = exchange.id();
  int top = lua_gettop(L_);
  lua_pushcfunction(L_, traceback);
  lua_rawgeti(L_, LUA_REGISTRYINDEX, render_error_ref_);
  if (service >= 0) {
    lua_pushinteger(L_, service + 1);
  } else {
    lua_pushnil(L_);
  }
  lua_pushinteger(L_, status);
  lua_pushlstring(L_, message.data(), message.size());
  lua_pushlstring(L_, id.data(), id.size());
  if (allowed) {
    lua_pushstring(L_, allowed);
  } else {
    lua_pushnil(L_);
  }
  ErrorAnswer answer{status, {}, {}};
  if (lua_pcall(L_, 5, 3, top + 1) == 0) {
    answer.status = static_cast<int>(lua_tointeger(L_, -3));
    size_t length;
    const char* text = lua_tolstring(L_, -2, &length);
    answer.body.assign(text ? text : "", text ? length : 0);
    answer.headers = headers_from_table(L_, lua_gettop(L_));
  } else {
    log::error("error handler failed", {{"request_id", id}, {"error", lua_tostring(L_, -1)}});
    answer.headers = {{"Content-Type", "application/json"}};
    if (allowed) answer.headers.emplace_back("Allow", allowed);
    answer.body = error_answer::default_body(status, message, id);
  }
  lua_settop(L_, top);
  return answer;
}

lua_State* Runtime::acquire_coroutine(int& ref) {
  if (!idle_coroutines_.empty()) {
    auto [idle_ref, coroutine] = idle_coroutines_.back();
    idle_coroutines_.pop_back();
    ref = idle_ref;
    return coroutine;
  }
  lua_State* coroutine = lua_newthread(L_);
  ref = luaL_ref(L_, LUA_REGISTRYINDEX);
  return coroutine;
}

void Runtime::release_coroutine(int ref, lua_State* coroutine, bool reusable) {
  constexpr size_t kMaxIdle = 256;
  if (reusable && idle_coroutines_.size() < kMaxIdle) {
    lua_settop(coroutine, 0);
    idle_coroutines_.emplace_back(ref, coroutine);
    return;
  }
  luaL_unref(L_, LUA_REGISTRYINDEX, ref);
}

Task* Runtime::spawn(Task::Kind kind, const Task::Pusher& push_call) {
  auto owned = std::make_unique<Task>(*this, kind, nullptr);
  Task* task = owned.get();
  uint64_t id = task->id();
  worker_->add_task(std::move(owned));
  task->start(push_call);
  return worker_->find_task(id);
}

int Runtime::run_command(const std::string& name, const std::vector<std::string>& arguments) {
  lua_settop(L_, 0);
  lua_pushcfunction(L_, traceback);
  lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
  lua_getfield(L_, -1, "run_command");
  lua_remove(L_, -2);
  lua_pushstring(L_, name.c_str());
  lua_createtable(L_, static_cast<int>(arguments.size()), 0);
  for (size_t i = 0; i < arguments.size(); ++i) {
    lua_pushstring(L_, arguments[i].c_str());
    lua_rawseti(L_, -2, static_cast<int>(i + 1));
  }
  if (lua_pcall(L_, 2, 1, 1) != 0) throw std::runtime_error(lua_tostring(L_, -1));
  int count = static_cast<int>(lua_tointeger(L_, -1));
  lua_settop(L_, 0);
  return count;
}

Task* Runtime::spawn_logged(Task::Kind kind, const char* what, const Task::Pusher& push_call) {
  return spawn(kind, [&](lua_State* co) {
    lua_rawgeti(co, LUA_REGISTRYINDEX, prelude_ref_);
    lua_getfield(co, -1, "run_logged");
    lua_remove(co, -2);
    lua_pushstring(co, what);
    return push_call(co) + 2;
  });
}

void Runtime::activate() {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, prelude_ref_);
  lua_getfield(L_, -1, "start_hooks");
  lua_pushinteger(L_, static_cast<lua_Integer>(worker_->index()));
  lua_call(L_, 1, 1);
  size_t count = lua_objlen(L_, -1);
  std::vector<int> hooks;
  for (size_t i = 1; i <= count; ++i) {
    lua_rawgeti(L_, -1, static_cast<int>(i));
    hooks.push_back(luaL_ref(L_, LUA_REGISTRYINDEX));
  }
  lua_pop(L_, 2);
  for (int hook : hooks) {
    spawn_logged(Task::Kind::job, "on_start hook", [hook](lua_State* co) {
      lua_rawgeti(co, LUA_REGISTRYINDEX, hook);
      return 1;
    });
    luaL_unref(L_, LUA_REGISTRYINDEX, hook);
  }
}

void Runtime::retire() {
  if (retired_) return;
  retired_ = true;
  auto callbacks = std::move(retire_callbacks_);
  for (auto& callback : callbacks) callback();
}

}  // namespace depot
