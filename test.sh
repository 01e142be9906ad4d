#!/usr/bin/env bash
# Runs every test: installs dependencies, builds, and runs the Catch2 unit and end-to-end tests
# (and the embedding example) through CTest. Extra arguments go to ctest (e.g. -R json).
#
#   ./test.sh --sanitize [ctest args]   the same suite built with clang's ASan + UBSan in build-asan/
#                                       (shared with tests/fuzz/run.sh; see tests/sanitizers/build.sh),
#                                       without the [large] tests; any sanitizer report fails the
#                                       test that caused it.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
if [ "${1:-}" = "--sanitize" ]; then
  shift
  source tests/sanitizers/build.sh
  configure_sanitizer_build
  # Only what the tests run: the fuzz harnesses in the same tree are built by tests/fuzz/run.sh.
  cmake --build "$sanitizer_build" -j"$(nproc)" --target depot_tests depot embedded_harness
  cd "$sanitizer_build"
  # Leaks are reported too. A suppression, for third-party code only, goes in tests/sanitizers/
  # with a comment saying why; project code is fixed instead.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
else
  options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=ON)
  # ccache where it is installed (developer machines); CI builds without it.
  if command -v ccache >/dev/null; then options+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B build "${options[@]}" >/dev/null
  cmake --build build -j"$(nproc)"
  cd build
fi
ctest --output-on-failure --timeout 300 -j"$(nproc)" "$@"
