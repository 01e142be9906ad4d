# Sourced by ./test.sh --sanitize and tests/fuzz/run.sh: configures build-asan/, one clang build
# with ASan + UBSan holding both the test suite and the libFuzzer harnesses, so that the two CI
# stages share one instrumented build of the engine (compiling it twice was most of their time).
# The coverage instrumentation libFuzzer needs costs the tests little; clang's ASan and UBSan are
# the reference implementations.
sanitizer_build=build-asan

configure_sanitizer_build() {
  local options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=ON -DDEPOT_SANITIZE=ON -DDEPOT_FUZZ=ON
    -DCMAKE_CXX_COMPILER=clang++)
  # ccache where it is installed (developer machines); CI builds without it.
  if command -v ccache >/dev/null; then options+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$sanitizer_build" "${options[@]}" >/dev/null
}
