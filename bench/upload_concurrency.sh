#!/usr/bin/env bash
# Memory of many uploads at once, and upload throughput, on the file cache: UPLOADS concurrent
# uploads of UPLOAD_BYTES each (one socket each, all sending together), with Depot's RSS sampled
# while they run (peak) and again SETTLE seconds after the last answer (is memory handed back?);
# then PARALLEL sockets each uploading ROUNDS files of SMALL_BYTES one after another (req/s), and
# one upload of BIG_BYTES (MiB/s), each with Depot's CPU per MiB received. KBase's auth is the Lua
# stub from tests/stubs, served by the same Depot. The client is bench/upload_clients.py. Writes
# UPLOADS × UPLOAD_BYTES (10 GiB by default) under TMPDIR, removed as it goes. Not run in CI.
#
# Environment: UPLOADS (500), UPLOAD_BYTES (20971520), SETTLE (5), PARALLEL (16), ROUNDS (40),
# SMALL_BYTES (1048576), BIG_BYTES (1073741824), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

UPLOADS=${UPLOADS:-500}
UPLOAD_BYTES=${UPLOAD_BYTES:-20971520}
SETTLE=${SETTLE:-5}
PARALLEL=${PARALLEL:-16}
ROUNDS=${ROUNDS:-40}
SMALL_BYTES=${SMALL_BYTES:-1048576}
BIG_BYTES=${BIG_BYTES:-1073741824}

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth"}},
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]}],
 "watch_scripts": false, "limits": {"request_deadline": 1800}}
JSON
}

mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

main() {
  require_depot_tools
  begin_run
  local port rss_start rss_after result peak hwm ticks allocator
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  allocator=$(grep -o -m1 -E 'lib(jemalloc|mimalloc|tcmalloc)[^ ]*' "/proc/$DEPOT_PID/maps" || echo "glibc malloc")
  report "file cache: $UPLOADS concurrent uploads of $UPLOAD_BYTES bytes, then throughput"
  report_environment
  report "allocator: $allocator"
  python3 "$BENCH_DIR/upload_clients.py" --port "$port" --new-ids "$((UPLOADS > PARALLEL ? UPLOADS : PARALLEL))" --ids "$WORK_DIR/ids"

  # A few small uploads first, so the baseline includes the routes, auth and kv warm-up.
  run_clients "$port" 2 2 65536 >/dev/null
  rss_start=$(memory_kb "$DEPOT_PID" VmRSS)

  log "$UPLOADS concurrent uploads of $UPLOAD_BYTES bytes"
  result=$(run_clients "$port" "$UPLOADS" 1 "$UPLOAD_BYTES")
  peak=$(json_field "$result" peak_rss_kb)
  hwm=$(json_field "$result" hwm_kb)
  sleep "$SETTLE"
  rss_after=$(memory_kb "$DEPOT_PID" VmRSS)
  rm -rf "$WORK_DIR/data/file_cache"
  report ""
  report "$UPLOADS concurrent uploads: $(json_field "$result" seconds) s, $(json_field "$result" mib_per_s) MiB/s in all"
  report "Depot RSS:  $(mib "$rss_start") MiB before, peak $(mib "$peak") MiB sampled (VmHWM $(mib "$hwm") MiB)," \
    "$(mib "$rss_after") MiB ${SETTLE} s after"
  report "per upload: $(awk -v p="$hwm" -v s="$rss_start" -v n="$UPLOADS" 'BEGIN { printf "%.0f", (p - s) / n }') KiB" \
    "at the peak (VmHWM growth / $UPLOADS); still held after: $(mib $((rss_after - rss_start))) MiB"

  log "$PARALLEL sockets x $ROUNDS uploads of $SMALL_BYTES bytes"
  ticks=$(cpu_ticks "$DEPOT_PID")
  result=$(run_clients "$port" "$PARALLEL" "$ROUNDS" "$SMALL_BYTES")
  ticks=$(($(cpu_ticks "$DEPOT_PID") - ticks))
  report "$PARALLEL parallel x $ROUNDS uploads of $SMALL_BYTES bytes: $(json_field "$result" requests_per_s) req/s," \
    "$(json_field "$result" mib_per_s) MiB/s, Depot CPU $(cpu_ms_per_mib "$ticks" $((PARALLEL * ROUNDS * SMALL_BYTES))) ms/MiB"

  log "one upload of $BIG_BYTES bytes"
  ticks=$(cpu_ticks "$DEPOT_PID")
  result=$(run_clients "$port" 1 1 "$BIG_BYTES")
  ticks=$(($(cpu_ticks "$DEPOT_PID") - ticks))
  report "one upload of $BIG_BYTES bytes: $(json_field "$result" seconds) s, $(json_field "$result" mib_per_s) MiB/s," \
    "Depot CPU $(cpu_ms_per_mib "$ticks" "$BIG_BYTES") ms/MiB"
  report "Depot RSS at the end: $(mib "$(memory_kb "$DEPOT_PID" VmRSS)") MiB"
  log "results written to $RESULTS_FILE"
}

main "$@"
