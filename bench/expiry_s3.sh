#!/usr/bin/env bash
# One run of the file cache's expiry on S3 (s3rver from tests/s3, on this machine): its requests
# to S3 by kind and its seconds, on an empty store and on one of FILES live files (nothing to
# remove: every stored file is checked against its entry). The requests are counted by a relay
# in front of s3rver (tests/stubs/s3_relay, served by the same Depot); the seconds are taken
# without it, straight to s3rver. Each figure is the median of ROUNDS runs
# (bench/scripts/file_cache_expiry runs it on demand). To compare two versions, run it with
# another DEPOT_BINARY and SCRIPTS_DIR (an older checkout's build/depot and scripts/). Not run in CI.
#
# Environment: FILES (2000), ROUNDS (5), DEPOT_BINARY (build/depot), SCRIPTS_DIR (scripts/).
# Needs node and `npm ci` in tests/s3 (./setup.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILES=${FILES:-2000} # a multiple of 8 (8 upload connections)
ROUNDS=${ROUNDS:-5}
SCRIPTS_DIR=${SCRIPTS_DIR:-$REPO_DIR/scripts}
STOP_ON_EXIT+=(stop_s3rver)

write_config() { # port endpoint
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"],
   "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth", "expiry_interval": 86400}},
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]},
  {"name": "s3_relay", "script": "$REPO_DIR/tests/stubs/s3_relay", "mount": ["/s3"],
   "config": {"upstream": "http://127.0.0.1:$S3_PORT", "mount": "/s3"}},
  {"name": "file_cache_expiry", "script": "$BENCH_DIR/scripts/file_cache_expiry", "mount": ["/bench"]}],
 "storage": {"blobs": "s3://depot/bench", "s3_endpoint": "$2"}, "watch_scripts": false}
JSON
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# "seconds_median list list_continued list_uploads delete other" for the store as it is now.
measure() { # label
  local port seconds before after
  port=$(free_port)
  write_config "$port" "http://127.0.0.1:$port/s3"
  start_depot "$WORK_DIR/depot.json" "$SCRIPTS_DIR" "$port" warn
  # The relay's counts live in the data dir's kv: what this run added is the difference.
  before=$(curl -sf "http://127.0.0.1:$port/s3/_relay/calls")
  curl -sf -X POST "http://127.0.0.1:$port/bench/run" >/dev/null || die "expiry run failed"
  after=$(curl -sf "http://127.0.0.1:$port/s3/_relay/calls")
  stop_depot
  port=$(free_port)
  write_config "$port" "http://127.0.0.1:$S3_PORT"
  start_depot "$WORK_DIR/depot.json" "$SCRIPTS_DIR" "$port" warn
  seconds=$(for _ in $(seq "$ROUNDS"); do
    json_field "$(curl -sf -X POST "http://127.0.0.1:$port/bench/run")" seconds
  done | median)
  stop_depot
  python3 -c 'import json, sys
before, after = json.loads(sys.argv[2]), json.loads(sys.argv[3])
kinds = ("list", "list_continued", "list_uploads", "delete", "other")
print("%.3f" % float(sys.argv[1]), *(after[k] - before[k] for k in kinds))' "$seconds" "$before" "$after"
}

main() {
  require_depot_tools
  begin_run
  start_s3rver
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
  report "file cache expiry on S3 (s3rver): one run on an empty store and on $FILES live files, median of $ROUNDS"
  report_environment
  report "scripts:  $SCRIPTS_DIR"
  local empty full port uploaded
  log "empty store"
  read -r -a empty <<<"$(measure)"
  log "uploading $FILES files"
  port=$(free_port)
  write_config "$port" "http://127.0.0.1:$S3_PORT"
  start_depot "$WORK_DIR/depot.json" "$SCRIPTS_DIR" "$port" warn
  python3 "$BENCH_DIR/upload_clients.py" --port "$port" --new-ids "$FILES" --ids "$WORK_DIR/ids"
  uploaded=$(python3 "$BENCH_DIR/upload_clients.py" --port "$port" --pid "$DEPOT_PID" \
    --ids "$WORK_DIR/ids" --connections 8 --rounds $((FILES / 8)) --size 1024 --fresh)
  [ "$(json_field "$uploaded" failed)" = 0 ] || die "uploads failed: $uploaded"
  stop_depot
  log "$FILES files"
  read -r -a full <<<"$(measure)"
  report ""
  report "store          seconds  ListObjectsV2  (continued)  ListMultipartUploads  DELETE  other"
  report "$(printf 'empty         %8s  %13s  %11s  %20s  %6s  %5s' "${empty[@]}")"
  report "$(printf '%-5s files   %8s  %13s  %11s  %20s  %6s  %5s' "$FILES" "${full[@]}")"
  log "results written to $RESULTS_FILE"
}

main "$@"
