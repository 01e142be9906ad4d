# Headers parsed once per target instead of once per file: nlohmann/json (through engine/log.hpp
# nearly every file has it), LuaJIT and the standard library. tests/CMakeLists.txt adds Catch2.
set(DEPOT_PRECOMPILED_HEADERS <nlohmann/json.hpp> <lua.hpp> <algorithm> <atomic> <chrono>
    <cstdint> <cstring> <filesystem> <functional> <map> <memory> <mutex> <optional> <stdexcept>
    <string> <string_view> <thread> <unordered_map> <utility> <vector>)

# ccache caches a file built on a precompiled header only with these sloppinesses, and for clang
# only when the header has no timestamp in it (ccache's manual, "Precompiled headers"); without
# them every such file is a miss.
if(CMAKE_CXX_COMPILER_LAUNCHER MATCHES "ccache")
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${CMAKE_CXX_COMPILER_LAUNCHER})
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    add_compile_options(-Xclang -fno-pch-timestamp)
  endif()
endif()
