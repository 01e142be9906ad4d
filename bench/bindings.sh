#!/usr/bin/env bash
# The Lua bindings measured from Lua (bench/scripts/bindings): kv puts and gets per second on a
# batched and on a durable handle, BLAKE2b GB/s streamed from Lua against libsodium called
# directly (bench/hash_direct.cpp), and outbound http requests per second against a local route,
# sequential (one task) and concurrent (wrk driving a route that makes one call per request).
#
# Environment: DEPOT_BINARY (build/depot), KV_OPS (100000), DURABLE_OPS (3000), DURATION (8).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KV_OPS=${KV_OPS:-100000}
DURABLE_OPS=${DURABLE_OPS:-3000}
DURATION=${DURATION:-8}

main() {
  require_depot_tools
  require_command g++ g++
  begin_run
  local port direct
  port=$(free_port)
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [{"name": "bindings", "script": "bindings", "mount": ["/"]}], "watch_scripts": false}
JSON
  start_depot "$WORK_DIR/depot.json" "$BENCH_DIR/scripts" "$port" warn
  report "Lua bindings measured from Lua"
  report_environment
  report "kv, batched ($KV_OPS ops):  $(curl -sS "http://127.0.0.1:$port/kv?n=$KV_OPS")"
  report "kv, durable ($DURABLE_OPS ops): $(curl -sS "http://127.0.0.1:$port/kv?n=$DURABLE_OPS&durable=1")"
  report "blake2b from Lua:          $(curl -sS "http://127.0.0.1:$port/blake2b?mib=256")"
  g++ -std=c++17 -O2 -o "$WORK_DIR/hash_direct" "$BENCH_DIR/hash_direct.cpp" $(pkg-config --cflags --libs libsodium)
  direct=$("$WORK_DIR/hash_direct")
  report "blake2b, libsodium from C++ (64 KiB pieces): {\"streamed_gb_per_s\": $direct}"
  report "http, sequential from one task: $(curl -sS "http://127.0.0.1:$port/http?n=2000")"
  report "http, concurrent: wrk -t1 -c16 -d${DURATION}s /proxy (each request makes one http.get to /target)"
  wrk -t1 -c16 -d"${DURATION}s" "http://127.0.0.1:$port/proxy" | tee -a "$RESULTS_FILE" | grep -E "Requests/sec|Non-2xx|errors" >&2 || true
  end_run
}

main "$@"
