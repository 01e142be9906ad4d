// Lua module `spec_server`: embedded Depot servers and scratch directories for the specs that
// `depot test` runs. Opened only in that command's Lua state (open_spec_bindings), never in a
// route script's: a route script has no business starting servers. The friendly API on top is
// the Lua module `depot.spec` (engine/lua/spec_helpers.lua, manual in docs/lua-api.md).
//
//   spec_server.start(config_json) → server   -- a depot.json document, as JSON text
//   server:port() → number, server:data_dir() → path
//   server:reload() → "" | why it was refused
//   server:stop()                               -- also when the state closes (__gc)
//   spec_server.scripts_dir() → path, spec_server.stubs_dir() → path
//   spec_server.scratch_dir() → dir             -- dir:path(), dir:remove() (also at __gc)
//
// Each server is a real Depot (its own reactor threads and worker Lua states) listening on
// 127.0.0.1, port 0 unless the document says otherwise, with its data in a scratch dir unless the
// document names a data_dir, scripts from the `depot test` scripts dir, and no script watcher.
// start() blocks until the server serves (or raises with why it could not start): the spec
// state runs on the command's main thread, which is no reactor thread.
//
// Errors: a document that is not a JSON object, holds unknown keys or settings of the wrong type
// raises "spec_server.start: <why>", as does a script that fails to load.
#include <memory>
#include <new>
#include <string>

#include "bindings/binding.hpp"
#include "engine/config.hpp"
#include "engine/config_keys.hpp"
#include "engine/runtime.hpp"
#include "engine/scratch_dir.hpp"
#include "engine/server.hpp"

namespace depot {
namespace {

const char* const kServerType = "depot.spec_server";
const char* const kScratchType = "depot.spec_scratch_dir";

// What a spec's server owns; the server goes before its data dir.
struct SpecServer {
  std::unique_ptr<ScratchDir> scratch;  // null when the document named a data_dir
  std::filesystem::path data_dir;
  std::unique_ptr<Server> server;
};

struct SpecScratch {
  std::unique_ptr<ScratchDir> dir;
};

// The object a method is called on (luaL_checkudata raises for anything else).
template <typename T>
T& self(lua_State* L, const char* type) {
  return *static_cast<T*>(luaL_checkudata(L, 1, type));
}

SpecServer& check_running(lua_State* L, const char* function) {
  SpecServer& spec = self<SpecServer>(L, kServerType);
  if (!spec.server) luaL_error(L, "%s: the server was stopped", function);
  return spec;
}

Options spec_options(const std::string& text, const std::filesystem::path& scripts_dir) {
  nlohmann::json document = nlohmann::json::parse(text, nullptr, false);
  if (!document.is_object()) throw ConfigError("the config must be a JSON object");
  std::vector<std::string> unknown = unknown_config_keys(document);
  if (!unknown.empty()) throw ConfigError(unknown_config_keys_message(unknown));
  Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 1;  // specs are small; a second worker is one setting away ("threads")
  options.watch_scripts = false;
  options.drain_timeout = std::chrono::seconds(2);
  options.scripts_dir = scripts_dir;
  options.data_dir.clear();
  options.config = document;
  read_config_document(document, options);
  return options;
}

// spec_server.start(config_json) → server
int start(lua_State* L) {
  const char* function = "spec_server.start";
  std::string text = check_string(L, 1, function, "config");
  const std::filesystem::path& scripts_dir = Runtime::of_state(L).generation().scripts_dir;
  auto* spec = static_cast<SpecServer*>(lua_newuserdata(L, sizeof(SpecServer)));
  new (spec) SpecServer();
  luaL_getmetatable(L, kServerType);
  lua_setmetatable(L, -2);
  std::string failure;
  try {
    Options options = spec_options(text, scripts_dir);
    if (options.data_dir.empty()) {
      spec->scratch = std::make_unique<ScratchDir>("depot-spec-");
      options.data_dir = spec->scratch->path;
    }
    spec->data_dir = options.data_dir;
    spec->server = std::make_unique<Server>(std::move(options));
    spec->server->start();
    return 1;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  spec->server.reset();
  spec->scratch.reset();
  return luaL_error(L, "%s: %s", function, failure.c_str());
}

int server_port(lua_State* L) {
  lua_pushinteger(L, check_running(L, "server:port").server->port());
  return 1;
}

int server_data_dir(lua_State* L) {
  lua_pushstring(L, check_running(L, "server:data_dir").data_dir.c_str());
  return 1;
}

int server_reload(lua_State* L) {
  std::string refused = check_running(L, "server:reload").server->reload();
  lua_pushlstring(L, refused.data(), refused.size());
  return 1;
}

// Stops the server (in-flight requests finish) and removes its scratch data dir. Idempotent.
int server_stop(lua_State* L) {
  SpecServer& spec = self<SpecServer>(L, kServerType);
  spec.server.reset();
  spec.scratch.reset();
  return 0;
}

int server_gc(lua_State* L) {
  static_cast<SpecServer*>(lua_touserdata(L, 1))->~SpecServer();
  return 0;
}

// spec_server.scripts_dir() → the directory servers load service scripts from (depot test
// --scripts)
int scripts_dir(lua_State* L) {
  lua_pushstring(L, Runtime::of_state(L).generation().scripts_dir.c_str());
  return 1;
}

// spec_server.stubs_dir() → the stand-in upstreams' directory (tests/stubs), the first that exists
// of: next to the scripts dir (a checkout), where the package installs them, next to a build dir in
// a checkout (a copy of the scripts elsewhere, under test before it is put in place).
int stubs_dir(lua_State* L) {
  std::error_code error;
  std::filesystem::path binary =
      std::filesystem::read_symlink("/proc/self/exe", error).parent_path();
  const std::filesystem::path candidates[] = {
      Runtime::of_state(L).generation().scripts_dir.parent_path() / "tests" / "stubs",
      binary.parent_path() / "share" / "depot" / "tests" / "stubs",
      binary.parent_path() / "tests" / "stubs",
  };
  const std::filesystem::path* found = &candidates[0];
  for (const std::filesystem::path& candidate : candidates) {
    if (std::filesystem::is_directory(candidate, error)) {
      found = &candidate;
      break;
    }
  }
  lua_pushstring(L, found->lexically_normal().c_str());
  return 1;
}

// spec_server.scratch_dir() → dir
int scratch_dir(lua_State* L) {
  auto* scratch = static_cast<SpecScratch*>(lua_newuserdata(L, sizeof(SpecScratch)));
  new (scratch) SpecScratch();
  luaL_getmetatable(L, kScratchType);
  lua_setmetatable(L, -2);
  std::string failure;
  try {
    scratch->dir = std::make_unique<ScratchDir>("depot-spec-");
    return 1;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  return luaL_error(L, "spec_server.scratch_dir: %s", failure.c_str());
}

int scratch_path(lua_State* L) {
  SpecScratch& scratch = self<SpecScratch>(L, kScratchType);
  if (!scratch.dir) return luaL_error(L, "dir:path: the directory was removed");
  lua_pushstring(L, scratch.dir->path.c_str());
  return 1;
}

int scratch_remove(lua_State* L) {
  self<SpecScratch>(L, kScratchType).dir.reset();
  return 0;
}

int scratch_gc(lua_State* L) {
  static_cast<SpecScratch*>(lua_touserdata(L, 1))->~SpecScratch();
  return 0;
}

}  // namespace

int open_spec_server(lua_State* L) {
  static const luaL_Reg server_methods[] = {{"port", server_port},
                                            {"data_dir", server_data_dir},
                                            {"reload", server_reload},
                                            {"stop", server_stop},
                                            {nullptr, nullptr}};
  static const luaL_Reg scratch_methods[] = {
      {"path", scratch_path}, {"remove", scratch_remove}, {nullptr, nullptr}};
  static const luaL_Reg functions[] = {{"start", start},
                                       {"scripts_dir", scripts_dir},
                                       {"stubs_dir", stubs_dir},
                                       {"scratch_dir", scratch_dir},
                                       {nullptr, nullptr}};
  define_metatable(L, kServerType, server_methods, server_gc);
  define_metatable(L, kScratchType, scratch_methods, scratch_gc);
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
