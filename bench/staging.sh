#!/usr/bin/env bash
# The staging service's local_copy against `cp -r` on the same filesystem: a 1 GiB file, and a
# tree of 10,000 small files (100 directories of 100 files of 1 KiB), best of ROUNDS each (the
# sources are in the page cache for every round, for both), with the ratio Depot / cp of wall
# times; and Depot's RSS (VmRSS, VmHWM) before and after. Each Depot copy is one
# POST /stage-data/?method=local_copy, timed by curl; it includes the read-only pass (files 0400,
# directories 0500) that cp does not do. Needs ~5 GiB free under TMPDIR. Not run in CI.
#
# Environment: FILE_BYTES (default 1073741824), TREE_DIRS (100), TREE_FILES (100 per directory),
# ROUNDS (3), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILE_BYTES=${FILE_BYTES:-1073741824}
TREE_DIRS=${TREE_DIRS:-100}
TREE_FILES=${TREE_FILES:-100}
ROUNDS=${ROUNDS:-3}

write_config() {
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [{"name": "staging", "mount": ["/"], "config": {
   "SOURCE_STORAGE_PATH": "$WORK_DIR/source", "TARGET_STORAGE_PATH": "$WORK_DIR/target",
   "LOGGING_LEVEL": "WARNING"}}],
 "watch_scripts": false}
JSON
}

make_tree() { # directory
  python3 - "$1" "$TREE_DIRS" "$TREE_FILES" <<'PY'
import os, sys
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(1024)
for d in range(dirs):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(files):
        with open(f"{root}/d{d:03}/f{f:03}.dat", "wb") as out:
            out.write(block)
PY
}

# Seconds one local_copy took (curl's clock); fails unless the service answered success.
stage_seconds() { # port source relative-path
  local result status seconds
  result=$(curl -sS -o "$WORK_DIR/answer.json" -w '%{http_code} %{time_total}' -X POST \
    "http://127.0.0.1:$1/stage-data/?method=local_copy&username=bench" \
    -H 'Content-Type: application/json' \
    -d "{\"data\": {\"local_path_on_storage\": \"$2\", \"relative_path\": \"$3\"}}")
  read -r status seconds <<<"$result"
  grep -q '"Data staged for user bench' "$WORK_DIR/answer.json" ||
    die "local_copy of $2 answered HTTP $status: $(cat "$WORK_DIR/answer.json")"
  echo "$seconds"
}

cp_seconds() { # source destination
  local started finished
  started=$(seconds_now)
  cp -r "$1" "$2"
  finished=$(seconds_now)
  awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.4f", b - a }'
}

# Read-only copies (0500 directories) need their modes back before they can be removed.
remove_copy() { chmod -R u+w "$1" 2>/dev/null || true; rm -rf "$1"; }

minimum() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

# best-of-ROUNDS seconds for Depot and for cp: sets DEPOT_BEST and CP_BEST.
measure() { # port source-relative-path
  local port=$1 relative=$2 round seconds
  DEPOT_BEST="" CP_BEST=""
  for round in $(seq "$ROUNDS"); do
    sync # neither copy pays for the write-back of the other's dirty pages
    seconds=$(cp_seconds "$WORK_DIR/source/$relative" "$WORK_DIR/cp-copy")
    CP_BEST=$(minimum "$CP_BEST" "$seconds")
    remove_copy "$WORK_DIR/cp-copy"
    sync
    seconds=$(stage_seconds "$port" "$relative" "round$round")
    DEPOT_BEST=$(minimum "$DEPOT_BEST" "$seconds")
    [ "$relative" != big.bin ] || cmp -s "$WORK_DIR/source/big.bin" "$WORK_DIR/target/bench/round$round" ||
      die "the staged copy differs from the source"
    remove_copy "$WORK_DIR/target/bench/round$round"
  done
}

ratio() { awk -v d="$1" -v c="$2" 'BEGIN { printf "%.2f", d / c }'; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

main() {
  require_depot_tools
  begin_run
  local port rss_start hwm_start
  mkdir -p "$WORK_DIR/source" "$WORK_DIR/target"
  log "writing the sources"
  head -c "$FILE_BYTES" /dev/urandom >"$WORK_DIR/source/big.bin"
  make_tree "$WORK_DIR/source/tree"
  port=$(free_port)
  write_config
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  report "staging local_copy vs cp -r, same filesystem ($(df -T "$WORK_DIR" | awk 'NR == 2 { print $2 }')), best of $ROUNDS"
  report_environment
  stage_seconds "$port" tree/d000/f000.dat warmup >/dev/null  # load the routes and kv databases
  rss_start=$(memory_kb "$DEPOT_PID" VmRSS)
  hwm_start=$(memory_kb "$DEPOT_PID" VmHWM)

  log "1 GiB file"
  measure "$port" big.bin
  local file_depot=$DEPOT_BEST file_cp=$CP_BEST hwm_file
  hwm_file=$(memory_kb "$DEPOT_PID" VmHWM)
  log "tree of $((TREE_DIRS * TREE_FILES)) files"
  measure "$port" tree
  local tree_depot=$DEPOT_BEST tree_cp=$CP_BEST

  report ""
  report "file of $FILE_BYTES bytes:  Depot $file_depot s, cp $file_cp s; Depot/cp time: $(ratio "$file_depot" "$file_cp")" \
    "($(awk -v b="$FILE_BYTES" -v s="$file_depot" 'BEGIN { printf "%.0f", b / 1048576 / s }') MiB/s)"
  report "tree of $((TREE_DIRS * TREE_FILES)) files of 1 KiB in $TREE_DIRS directories:" \
    "Depot $tree_depot s, cp $tree_cp s; Depot/cp time: $(ratio "$tree_depot" "$tree_cp")" \
    "($(awk -v n=$((TREE_DIRS * TREE_FILES)) -v s="$tree_depot" 'BEGIN { printf "%.0f", n / s }') files/s)"
  report "Depot RSS: $(mib "$rss_start") MiB after warm-up, $(mib "$(memory_kb "$DEPOT_PID" VmRSS)") MiB at the end;" \
    "VmHWM $(mib "$hwm_start") -> $(mib "$hwm_file") MiB after the file copies," \
    "$(mib "$(memory_kb "$DEPOT_PID" VmHWM)") MiB after the tree copies"
  end_run
}

main "$@"
