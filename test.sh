#!/usr/bin/env bash
# Runs every test: installs dependencies, builds, and runs the Catch2 unit and end-to-end tests
# (and the embedding example) through CTest. Extra arguments go to ctest (e.g. -R json).
#
#   ./test.sh --sanitize [ctest args]   the same suite built with ASan + UBSan in build-asan/;
#                                       any sanitizer report fails the test that caused it.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
build=build
options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=ON)
if [ "${1:-}" = "--sanitize" ]; then
  shift
  build=build-asan
  options+=(-DDEPOT_SANITIZE=ON)
  # Leaks are reported too, with no suppressions: one for a third-party library, if ever needed,
  # goes in tests/sanitizers/ with a comment saying why; project code is fixed instead.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
fi
# ccache where it is installed (developer machines); CI builds without it.
if command -v ccache >/dev/null; then options+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build" "${options[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 300 -j"$(nproc)" "$@"
