#!/usr/bin/env bash
# Peak memory of a streamed upload: POSTs 1 GiB of zeros chunked (curl -T -, which also sends
# Expect: 100-continue) to a Depot route that writes the body to disk chunk by chunk
# (bench/scripts/upload), and reports how far Depot's peak RSS (VmHWM) grew, plus time and CPU.
# A streaming server grows by about one receive buffer; a buffering one by the body size.
# Compare with the prototype's 6.6 → 6.7 MB (reactor-design.md §6.3).
#
# Environment: UPLOAD_BYTES (default 1073741824), DEPOT_BINARY (build/depot),
# KEEP_WORK_DIR=1 to keep the server log. The body is written under TMPDIR (default /tmp).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

UPLOAD_BYTES=${UPLOAD_BYTES:-1073741824}

write_depot_config() { # target-file
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [{"name": "upload", "script": "upload", "mount": ["/"], "config": {"target": "$1"}}],
 "watch_scripts": false}
JSON
}

# Sends `bytes` zeros to the route and checks the answer: HTTP 200 with {"bytes": N}, where the
# count and the file on disk both equal what was sent.
upload() { # port bytes target-file
  local port=$1 bytes=$2 target=$3 status received size
  status=$(head -c "$bytes" /dev/zero |
    curl -sS -X POST -T - -o "$WORK_DIR/response" -w '%{http_code}' "http://127.0.0.1:$port/upload") ||
    die "curl failed (HTTP status '$status')"
  [ "$status" = 200 ] || die "upload answered HTTP $status: $(head -c 300 "$WORK_DIR/response")"
  received=$(python3 -c 'import json, sys; print(int(json.load(sys.stdin)["bytes"]))' <"$WORK_DIR/response")
  size=$(stat -c %s "$target")
  if [ "$received" != "$bytes" ] || [ "$size" != "$bytes" ]; then
    die "sent $bytes bytes, the route counted $received and the file has $size"
  fi
}

main() {
  require_depot_tools
  begin_run

  local port target hwm_start hwm_before hwm_after rss_after ticks_before ticks_after started finished
  port=$(free_port)
  target=$WORK_DIR/upload.bin
  write_depot_config "$target"
  start_depot "$WORK_DIR/depot.json" "$BENCH_DIR/scripts" "$port" warn
  report "streamed upload: peak RSS of Depot"
  report_environment
  report "command:  head -c $UPLOAD_BYTES /dev/zero | curl -sS -X POST -T - http://127.0.0.1:PORT/upload"
  report "          (chunked, Expect: 100-continue; the route writes each chunk to a file under $(dirname "$WORK_DIR"))"
  report "server:   2 reactor threads, --log-level warn"
  hwm_start=$(memory_kb "$DEPOT_PID" VmHWM)

  # A small upload first, so the "before" figure already includes what the first request on a
  # route costs (Lua state warm-up, buffers) and the growth is due to the body size alone.
  upload "$port" 65536 "$target"

  hwm_before=$(memory_kb "$DEPOT_PID" VmHWM)
  ticks_before=$(cpu_ticks "$DEPOT_PID")
  started=$(seconds_now)
  log "uploading $UPLOAD_BYTES bytes"
  upload "$port" "$UPLOAD_BYTES" "$target"
  finished=$(seconds_now)
  ticks_after=$(cpu_ticks "$DEPOT_PID")
  hwm_after=$(memory_kb "$DEPOT_PID" VmHWM)
  rss_after=$(memory_kb "$DEPOT_PID" VmRSS)
  rm -f "$target"

  awk -v start="$hwm_start" -v before="$hwm_before" -v after="$hwm_after" -v rss="$rss_after" \
    -v bytes="$UPLOAD_BYTES" -v seconds="$(awk -v a="$started" -v b="$finished" 'BEGIN { print b - a }')" \
    -v cpu=$((ticks_after - ticks_before)) -v hz="$CLOCK_TICKS_PER_SECOND" 'BEGIN {
      printf "VmHWM:    %d kB at start, %d kB after a 64 KiB warm-up upload, %d kB after the upload\n", start, before, after
      printf "growth:   %.1f MiB (%d kB) during the upload; VmRSS afterwards %d kB\n", (after - before) / 1024, after - before, rss
      printf "time:     %.2f s wall (%.0f MiB/s), %.2f s of Depot CPU\n", seconds, bytes / 1048576 / seconds, cpu / hz
    }' | tee -a "$RESULTS_FILE"
  log "results written to $RESULTS_FILE"
}

main "$@"
