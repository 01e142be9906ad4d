#!/usr/bin/env bash
# Depot under hostile clients (issue 10, rows 8 and 9), full size, with bench/hostile_clients.py:
#
# 1. Slowloris: SLOW_CLIENTS (2000) connections each send one more header byte every 5 s while
#    Depot runs with `ulimit -n 1024`. A probe sends a normal GET /hello every 0.25 s meanwhile.
#    Reports the probes' worst latency and statuses, how many attackers were refused (503 at
#    max_connections) and when the others were cut (header_timeout, counted from the first byte).
#    Before the fix, the head timeout restarted on every byte and normal requests hung ~70 s.
# 2. Never-reading pipeliners: PIPE_CLIENTS (2000) clients each send 64 KiB of pipelined
#    GET /hello and never read. Reports Depot's RSS before, at its peak, and after they left.
#    Before the fix every answer was queued in memory (13 → 890 MiB).
#
# Environment: SLOW_CLIENTS (2000), SLOW_SECONDS (45: past the default 30 s header_timeout),
# PIPE_CLIENTS (2000), PIPE_BYTES (65536), PIPE_SECONDS (10), DEPOT_BINARY (build/depot),
# KEEP_WORK_DIR=1 to keep the server log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SLOW_CLIENTS=${SLOW_CLIENTS:-2000}
SLOW_SECONDS=${SLOW_SECONDS:-45}
PIPE_CLIENTS=${PIPE_CLIENTS:-2000}
PIPE_BYTES=${PIPE_BYTES:-65536}
PIPE_SECONDS=${PIPE_SECONDS:-10}
CLIENT=$BENCH_DIR/hostile_clients.py

write_depot_config() {
  cat >"$WORK_DIR/depot.json" <<'JSON'
{"services": [{"name": "hello", "script": "hello", "mount": ["/"]}], "watch_scripts": false}
JSON
}

# Depot with a descriptor limit of its own (the client raises its own limit in Python).
start_limited_depot() { # descriptor-limit port
  local previous
  previous=$(ulimit -Sn)
  ulimit -Sn "$1"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$2" warn
  ulimit -Sn "$previous"
}

slowloris() {
  local port
  port=$(free_port)
  start_limited_depot 1024 "$port"
  report ""
  report "1. slowloris: $SLOW_CLIENTS connections, one header byte each every 5 s, for $SLOW_SECONDS s"
  report "   server: ulimit -n 1024, default limits (header_timeout 30 s, max_connections 1024 - 128)"
  report "   $(python3 "$CLIENT" slowloris "$port" "$SLOW_CLIENTS" "$SLOW_SECONDS" 5)"
  curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/hello" || die "GET /hello failed after the attack"
  report "   after the attack: GET /hello answered"
  stop_depot
}

pipeliners() {
  local port rss_before hwm rss_after
  port=$(free_port)
  start_limited_depot 8192 "$port"
  curl -sf -o /dev/null "http://127.0.0.1:$port/hello"
  rss_before=$(memory_kb "$DEPOT_PID" VmRSS)
  report ""
  report "2. never-reading pipeliners: $PIPE_CLIENTS clients, $PIPE_BYTES bytes of GET /hello each, kept $PIPE_SECONDS s"
  report "   $(python3 "$CLIENT" pipeline "$port" "$PIPE_CLIENTS" "$PIPE_BYTES" "$PIPE_SECONDS")"
  hwm=$(memory_kb "$DEPOT_PID" VmHWM)
  sleep 3  # the sweep and the closes settle
  rss_after=$(memory_kb "$DEPOT_PID" VmRSS)
  curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/hello" || die "GET /hello failed after the attack"
  report "   Depot RSS: before $((rss_before / 1024)) MiB, peak $((hwm / 1024)) MiB, after $((rss_after / 1024)) MiB"
  stop_depot
}

main() {
  require_depot_tools
  begin_run
  write_depot_config
  report "hostile clients against Depot"
  report_environment
  slowloris
  pipeliners
  log "results written to $RESULTS_FILE"
}

main "$@"
