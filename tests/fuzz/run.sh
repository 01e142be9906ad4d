#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang in build-asan/ (the sanitizer test build, shared: see
# tests/sanitizers/build.sh) and runs each for a fixed time (FUZZ_SECONDS, default 60; CI: 25). A crash, sanitizer report or failed check stops that harness; its
# input is saved as tests/fuzz/regressions/<harness>/crash-<sha1>, which the normal test suite
# then replays (tests/engine/fuzz_regression_test.cpp), and the script fails after the others ran.
#
#   tests/fuzz/run.sh [harness...]       harnesses: http_request multipart json (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${FUZZ_SECONDS:-60}"
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(http_request multipart json)

./setup.sh
source tests/sanitizers/build.sh
configure_sanitizer_build
cmake --build "$sanitizer_build" -j"$(nproc)" --target "${harnesses[@]/%/_fuzzer}"

# libFuzzer checks for leaks after an input whose mallocs and frees do not balance.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
failed=()
for harness in "${harnesses[@]}"; do
  corpus="$sanitizer_build/corpus/$harness"  # grows across local runs; the seeds stay untouched
  findings="tests/fuzz/regressions/$harness"
  mkdir -p "$corpus" "$findings"
  echo "fuzz: $harness for $seconds s"
  if ! "$sanitizer_build/tests/fuzz/${harness}_fuzzer" "$corpus" "tests/fuzz/corpus/$harness" \
      -max_total_time="$seconds" -timeout=30 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$findings/" 2>"$sanitizer_build/$harness.log"; then
    tail -n 60 "$sanitizer_build/$harness.log"
    failed+=("$harness")
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$sanitizer_build/$harness.log" |
    sed "s/^/fuzz: $harness /"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs saved under tests/fuzz/regressions/)"
  exit 1
fi
