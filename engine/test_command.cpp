// `depot test` (see test_command.hpp).
#include "engine/test_command.hpp"

#include <curl/curl.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "bindings/binding.hpp"
#include "engine/generation.hpp"
#include "engine/log.hpp"
#include "engine/runtime.hpp"
#include "engine/scratch_dir.hpp"
#include "engine/spec_files.hpp"

namespace depot {
namespace {

// What busted's runner is told: the arguments, a pattern that takes `*_spec.lua` files only
// (busted's own default, "_spec", would also take `my_spec_helpers.lua`), and the scripts dir
// when no argument names a file or directory (one that exists or looks like a path: a typo must
// not quietly run every spec instead).
std::vector<std::string> busted_arguments(const std::vector<std::string>& arguments,
                                          const std::filesystem::path& scripts_dir) {
  std::vector<std::string> out = arguments;
  bool has_path = false;
  bool has_pattern = false;
  for (const std::string& argument : arguments) {
    std::error_code error;
    if (argument.empty()) continue;
    bool looks_like_path = argument.find('/') != std::string::npos ||
                           (argument.size() > 4 && argument.substr(argument.size() - 4) == ".lua");
    if (argument[0] != '-' && (looks_like_path || std::filesystem::exists(argument, error)))
      has_path = true;
    if (argument == "-p" || argument.rfind("--pattern", 0) == 0) has_pattern = true;
  }
  if (!has_pattern) out.insert(out.begin(), std::string("--pattern=") + kSpecPattern);
  if (!has_path) out.push_back(scripts_dir.string());
  return out;
}

// busted ends its run with os.exit, which would skip the servers' orderly stop (and the
// removal of their scratch dirs): here it raises {exit_code = n} instead, caught below.
const char* const kExitAsError = R"(
  os.exit = function(code)
    if code == true or code == nil then code = 0 elseif code == false then code = 1 end
    error({ exit_code = tonumber(code) or 1 }, 0)
  end
)";

// The runner is called from a chunk named like a file, so busted calls itself "depot test" and
// reports failures by raising (its exit(…, forceExit = false)), not by exiting.
const char* const kRunBusted = R"(
  arg = ...
  require("busted.runner")({ standalone = false })
)";

int run_chunk(lua_State* L, const char* source, const char* name, int arguments) {
  if (luaL_loadbuffer(L, source, strlen(source), name) != 0) {
    std::cerr << "depot test: " << lua_tostring(L, -1) << "\n";
    return 1;
  }
  lua_insert(L, -1 - arguments);
  if (lua_pcall(L, arguments, 0, 0) == 0) return 0;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "exit_code");
    return lua_isnumber(L, -1) && lua_tointeger(L, -1) == 0 ? 0 : 1;
  }
  // busted raises nil once it has reported failing specs; anything else is an error of its own.
  if (!lua_isnil(L, -1)) {
    const char* message = lua_tostring(L, -1);
    std::cerr << "depot test: " << (message ? message : "(error object is not a string)") << "\n";
    if (message && std::strstr(message, "module 'busted.runner' not found")) {
      std::cerr << "depot test: busted is not installed (Debian: apt-get install lua-busted)\n";
    }
  }
  return 1;
}

}  // namespace

int run_specs(const CommandLine& command_line, const std::vector<std::string>& arguments) {
  Options options = load_options(command_line);
  // The servers' start lines and warnings (a spec's stand-in settings, say) would drown busted's
  // report; their errors still show, and --log-level shows more.
  if (!command_line.log_level && std::getenv("DEPOT_LOG_LEVEL") == nullptr)
    log::set_level(log::Level::error);
  // Once, before any server thread could race it for libcurl's global state.
  curl_global_init(CURL_GLOBAL_DEFAULT);

  // The spec state's own data dir (a spec's kv.open lands here), not the server's data.
  ScratchDir scratch("depot-spec-");
  options.services.clear();
  options.data_dir = scratch.path;
  options.scripts_dir = std::filesystem::absolute(options.scripts_dir).lexically_normal();
  Runtime runtime(nullptr, make_generation(options, 0));
  lua_State* L = runtime.state();
  open_spec_bindings(L);

  std::vector<std::string> argv = busted_arguments(arguments, options.scripts_dir);
  lua_createtable(L, static_cast<int>(argv.size()), 1);
  lua_pushstring(L, "depot test");
  lua_rawseti(L, -2, 0);
  for (size_t i = 0; i < argv.size(); ++i) {
    lua_pushstring(L, argv[i].c_str());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  int status = run_chunk(L, kExitAsError, "=depot test", 0);
  if (status == 0) status = run_chunk(L, kRunBusted, "@depot test", 1);
  std::cout.flush();
  return status;
}

}  // namespace depot
