#!/usr/bin/env bash
# The file cache with its bytes on S3 (s3rver from tests/s3, on this machine) against the same on
# files: one upload of BIG_BYTES (MiB/s, and Depot's memory: VmHWM growth, which streaming must
# keep near two 8 MiB parts), PARALLEL × ROUNDS uploads of SMALL_BYTES (req/s), and the download
# of the big file (MiB/s, VmHWM growth: relayed with ~256 KiB buffered). Prints S3/files ratios.
# s3rver is a node process writing to the same disk, so the S3 figures are a floor for a real
# object store on its own machines, not a forecast. Not run in CI.
#
# Environment: BIG_BYTES (268435456), PARALLEL (8), ROUNDS (8), SMALL_BYTES (1048576),
# DEPOT_BINARY (build/depot). Needs node and `npm ci` in tests/s3 (./setup.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BIG_BYTES=${BIG_BYTES:-268435456}
PARALLEL=${PARALLEL:-8}
ROUNDS=${ROUNDS:-8}
SMALL_BYTES=${SMALL_BYTES:-1048576}
STOP_ON_EXIT+=(stop_s3rver)

write_config() { # port storage-json
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth"}},
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]}],
 "storage": $2, "watch_scripts": false, "limits": {"request_deadline": 1800}}
JSON
}

# One backend's figures as "upload_mib_s upload_hwm_kb small_req_s download_mib_s download_hwm_kb".
measure() { # storage-json
  local port result base up_speed up_kb small download_start download_seconds down_kb id
  port=$(free_port)
  write_config "$port" "$1"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  python3 "$BENCH_DIR/upload_clients.py" --port "$port" --new-ids "$PARALLEL" --ids "$WORK_DIR/ids"
  run_clients "$port" 2 2 65536 >/dev/null
  base=$(memory_kb "$DEPOT_PID" VmHWM)
  result=$(run_clients "$port" 1 1 "$BIG_BYTES")
  up_speed=$(json_field "$result" mib_per_s)
  up_kb=$(($(memory_kb "$DEPOT_PID" VmHWM) - base))
  small=$(json_field "$(run_clients "$port" "$PARALLEL" "$ROUNDS" "$SMALL_BYTES")" requests_per_s)
  # The big file again, then its download (the small rounds replaced the files of the other ids).
  run_clients "$port" 1 1 "$BIG_BYTES" >/dev/null
  id=$(head -n 1 "$WORK_DIR/ids")
  base=$(memory_kb "$DEPOT_PID" VmHWM)
  download_start=$(seconds_now)
  curl -sf -o /dev/null -H "Authorization: non_admin_token" "http://127.0.0.1:$port/v1/cache/$id" ||
    die "download failed"
  download_seconds=$(awk -v a="$download_start" -v b="$(seconds_now)" 'BEGIN { print b - a }')
  down_kb=$(($(memory_kb "$DEPOT_PID" VmHWM) - base))
  stop_depot
  rm -rf "$WORK_DIR/data" "$WORK_DIR/ids"
  mkdir -p "$WORK_DIR/data"
  echo "$up_speed $up_kb $small $(awk -v s="$download_seconds" -v b="$BIG_BYTES" 'BEGIN { printf "%.1f", b / 1048576 / s }') $down_kb"
}

main() {
  require_depot_tools
  begin_run
  start_s3rver
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
  report "file cache on S3 (s3rver) vs on files: $BIG_BYTES-byte upload and download, $PARALLEL x $ROUNDS uploads of $SMALL_BYTES bytes"
  report_environment
  local files s3
  log "on files"
  read -r -a files <<<"$(measure '{}')"
  log "on S3"
  read -r -a s3 <<<"$(measure "{\"blobs\": \"s3://depot/bench\", \"s3_endpoint\": \"http://127.0.0.1:$S3_PORT\"}")"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  report ""
  report "                      files        S3     S3/files"
  report "upload MiB/s       $(printf '%8s  %8s' "${files[0]}" "${s3[0]}")   $(ratio "${s3[0]}" "${files[0]}")"
  report "upload VmHWM KiB   $(printf '%8s  %8s' "${files[1]}" "${s3[1]}")"
  report "small uploads/s    $(printf '%8s  %8s' "${files[2]}" "${s3[2]}")   $(ratio "${s3[2]}" "${files[2]}")"
  report "download MiB/s     $(printf '%8s  %8s' "${files[3]}" "${s3[3]}")   $(ratio "${s3[3]}" "${files[3]}")"
  report "download VmHWM KiB $(printf '%8s  %8s' "${files[4]}" "${s3[4]}")"
  log "results written to $RESULTS_FILE"
}

main "$@"
