#!/usr/bin/env bash
# Peak memory of uploads to S3: how far the `depot serve` process's VmHWM grows while the file
# cache streams one upload of UPLOAD_BYTES, and then CONCURRENT uploads of UPLOAD_BYTES at once,
# into s3rver (tests/s3, on this machine) as multipart uploads of 8 MiB parts. Each figure comes
# from a fresh server (VmHWM never goes down) after a 64 KiB warm-up upload. Prints the growth per
# upload in parts: a writer that holds each part once stays near 1 (one 8 MiB part per upload).
# Not run in CI.
#
# Environment: UPLOAD_BYTES (67108864), CONCURRENT (16), DEPOT_BINARY (build/depot: run it once
# with another build to compare). Needs node and `npm ci` in tests/s3 (./setup.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

UPLOAD_BYTES=${UPLOAD_BYTES:-67108864}
CONCURRENT=${CONCURRENT:-16}
PART_BYTES=$((8 * 1024 * 1024))
STOP_ON_EXIT+=(stop_s3rver)

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth"}},
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]}],
 "storage": {"blobs": "s3://depot/bench", "s3_endpoint": "http://127.0.0.1:$S3_PORT"},
 "watch_scripts": false, "limits": {"request_deadline": 1800}}
JSON
}

# VmHWM growth in kB of a fresh server during `connections` simultaneous uploads.
measure() { # connections
  local port base
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  python3 "$BENCH_DIR/upload_clients.py" --port "$port" --new-ids "$1" --ids "$WORK_DIR/ids"
  run_clients "$port" 1 1 65536 >/dev/null
  base=$(memory_kb "$DEPOT_PID" VmHWM)
  run_clients "$port" "$1" 1 "$UPLOAD_BYTES" >/dev/null
  echo $(($(memory_kb "$DEPOT_PID" VmHWM) - base))
  stop_depot
  rm -rf "$WORK_DIR/ids"
}

main() {
  require_depot_tools
  begin_run
  start_s3rver
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
  report "file cache uploads to S3 (s3rver): VmHWM growth of depot serve, 1 and $CONCURRENT concurrent uploads of $UPLOAD_BYTES bytes"
  report_environment
  local one many
  log "one upload"
  one=$(measure 1)
  log "$CONCURRENT concurrent uploads"
  many=$(measure "$CONCURRENT")
  per_part() { awk -v kb="$1" -v n="$2" -v part="$PART_BYTES" 'BEGIN { printf "%.2f", kb * 1024 / n / part }'; }
  report ""
  report "uploads   VmHWM growth KiB   per upload, in 8 MiB parts"
  report "$(printf '%7s   %16s   %s' 1 "$one" "$(per_part "$one" 1)")"
  report "$(printf '%7s   %16s   %s' "$CONCURRENT" "$many" "$(per_part "$many" "$CONCURRENT")")"
  log "results written to $RESULTS_FILE"
}

main "$@"
