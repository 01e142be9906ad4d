#!/usr/bin/env bash
# The file cache scaled out (issue 14): cache_id requests per second and 1 MiB upload and
# download MiB/s (bench/scale_out_clients.py: CONNECTIONS kept-alive sockets x ROUNDS each) with
# 1, 2 and 3 replicas on one shared store behind the tests' round-robin balancer
# (bench/round_robin_main.cpp), against one replica on its own LMDB and directory; then kv
# get/put/update ops/s from Lua (pgkv's bench/kv_backends.sh). Prints a table with the ratios to
# the single LMDB replica.
#
# The shared store: kv on a throwaway local PostgreSQL (tests/support/postgres.sh, fsync off) and
# the bytes on s3rver (tests/s3) — both on this machine, so they take CPU from the replicas and
# their figures are a floor; KV_URL (postgres://...) and BLOB_URL (s3://bucket/prefix, with
# AWS_ENDPOINT_URL and the AWS_* credentials) point the replicas at real ones instead. SHARED=lmdb
# measures the one-host mode instead (one LMDB and one directory shared by the replicas).
#
# Environment: CONNECTIONS (12), ROUNDS (20), REPLICAS ("1 2 3"), SHARED (postgres+s3), KV_URL,
# BLOB_URL, DEPOT_BINARY (build/depot). Takes ~2 min on the 2-core machine. Not run in CI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONNECTIONS=${CONNECTIONS:-12}
ROUNDS=${ROUNDS:-20}
REPLICAS=${REPLICAS:-"1 2 3"}
SHARED=${SHARED:-postgres+s3}
KV_URL=${KV_URL:-}
BLOB_URL=${BLOB_URL:-}
POSTGRES_SCRIPT="$REPO_DIR/tests/support/postgres.sh"
POSTGRES_DIR=""
REPLICA_PIDS=()
BALANCER_PID=""
STOP_ON_EXIT+=(stop_s3rver)

stop_postgres() { [ -z "$POSTGRES_DIR" ] || "$POSTGRES_SCRIPT" stop "$POSTGRES_DIR"; }
STOP_ON_EXIT+=(stop_postgres)

# Sets SHARED_STORAGE, the "storage" section of the shared replicas' config: PostgreSQL + S3
# (started here unless KV_URL / BLOB_URL name servers), or {} for the shared LMDB and directory.
shared_storage() {
  SHARED_STORAGE='{}'
  [ "$SHARED" != lmdb ] || return 0
  if [ -z "$KV_URL" ]; then
    # Not under WORK_DIR: mktemp made that 0700, and the server runs as the postgres user.
    POSTGRES_DIR=$(mktemp -u "${TMPDIR:-/tmp}/depot-bench-postgres.XXXXXX")
    KV_URL=$("$POSTGRES_SCRIPT" start "$POSTGRES_DIR")
  fi
  if [ -z "$BLOB_URL" ]; then
    start_s3rver
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
    AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
    BLOB_URL=s3://depot/scale-out
  fi
  SHARED_STORAGE="{\"kv\": \"$KV_URL\", \"blobs\": \"$BLOB_URL\", \"s3_endpoint\": \"${AWS_ENDPOINT_URL:-}\"}"
}

write_config() { # file auth-port storage-json
  cat >"$1" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$2/auth"}}],
 "storage": $3, "watch_scripts": false}
JSON
}

# Starts one replica on `port` with data in `data-dir`.
start_replica() { # config port data-dir log
  local config=$1 port=$2 data=$3 log_file=$4 pid
  (
    cd "$WORK_DIR" || exit
    while read -r name; do unset "$name"; done < <(compgen -e | grep '^DEPOT_' || true)
    exec "$DEPOT_BINARY" serve --config "$config" --port "$port" --host 127.0.0.1 --threads 2 \
      --scripts "$REPO_DIR/scripts" --data-dir "$data" --log-level warn
  ) 2>"$log_file" &
  pid=$!
  REPLICA_PIDS+=("$pid")
  wait_until_answering "$port" "$pid" "$log_file"
}

stop_replicas() {
  local pid
  for pid in "${REPLICA_PIDS[@]}"; do stop_process "$pid"; done
  REPLICA_PIDS=()
  if [ -n "$BALANCER_PID" ]; then stop_process "$BALANCER_PID"; fi
  BALANCER_PID=""
}

# The balancer in front of the given ports; sets BALANCER_PORT.
start_balancer() { # port...
  local port_file=$WORK_DIR/balancer.port
  "$WORK_DIR/round_robin" "$@" >"$port_file" &
  BALANCER_PID=$!
  for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
  [ -s "$port_file" ] || die "the round-robin balancer did not start"
  BALANCER_PORT=$(cat "$port_file")
}

# Runs the clients against `port`; prints "ids/s up-MiB/s down-MiB/s", dies on any failure.
measure() { # port
  local result
  result=$(python3 "$BENCH_DIR/scale_out_clients.py" --port "$1" --connections "$CONNECTIONS" --rounds "$ROUNDS")
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(r["failed"] != 0)' "$result" ||
    die "requests failed: $result"
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["cache_ids_per_s"], r["upload_mib_per_s"], r["download_mib_per_s"])' "$result"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

row() { # label ids up down base-ids base-up base-down
  report "$(printf '%-34s %9s %6s   %9s %6s   %9s %6s' "$1" "$2" "x$(ratio "$2" "$5")" "$3" "x$(ratio "$3" "$6")" "$4" "x$(ratio "$4" "$7")")"
}

kv_table() {
  report "kv ops/s from Lua, PostgreSQL vs LMDB (bench/kv_backends.sh):"
  "$BENCH_DIR/kv_backends.sh" | grep -v '^\(date\|machine\|binary\|load avg\):' | sed 's/^/  /' | tee -a "$RESULTS_FILE"
}

main() {
  require_depot_tools
  require_command g++ g++
  begin_run
  STOP_ON_EXIT+=(stop_replicas)
  g++ -std=c++17 -O2 -I"$REPO_DIR" -o "$WORK_DIR/round_robin" "$BENCH_DIR/round_robin_main.cpp" \
    "$REPO_DIR/tests/support/round_robin.cpp" -pthread
  local auth_port shared_label base figures ids up down n ports port
  # The KBase auth stub on its own server, so that every replica asks the same one.
  auth_port=$(free_port)
  cat >"$WORK_DIR/auth.json" <<JSON
{"services": [{"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]}],
 "watch_scripts": false}
JSON
  start_depot "$WORK_DIR/auth.json" "$REPO_DIR/scripts" "$auth_port" warn
  write_config "$WORK_DIR/alone.json" "$auth_port" '{}'
  shared_storage
  write_config "$WORK_DIR/shared.json" "$auth_port" "$SHARED_STORAGE"
  if [ "$SHARED" = lmdb ]; then shared_label="shared LMDB + dir"; else shared_label="PostgreSQL + S3"; fi

  report "file cache scaled out: $CONNECTIONS connections x $ROUNDS rounds, 1 MiB files"
  report_environment
  report "$(printf '%-34s %16s   %16s   %16s' "" "cache_id req/s" "upload MiB/s" "download MiB/s")"

  port=$(free_port)
  start_replica "$WORK_DIR/alone.json" "$port" "$WORK_DIR/data-alone" "$WORK_DIR/alone.log"
  figures=$(measure "$port") # an assignment, so that a failed measure stops the run (set -e)
  read -r ids up down <<<"$figures"
  base=("$ids" "$up" "$down")
  stop_replicas
  row "1 replica, own LMDB + dir (direct)" "$ids" "$up" "$down" "${base[@]}"

  for n in $REPLICAS; do
    ports=()
    mkdir -p "$WORK_DIR/data-shared-$n"
    for i in $(seq "$n"); do
      port=$(free_port)
      start_replica "$WORK_DIR/shared.json" "$port" "$WORK_DIR/data-shared-$n" "$WORK_DIR/replica-$n-$i.log"
      ports+=("$port")
    done
    start_balancer "${ports[@]}"
    figures=$(measure "$BALANCER_PORT")
    read -r ids up down <<<"$figures"
    stop_replicas
    row "$n replica(s), $shared_label" "$ids" "$up" "$down" "${base[@]}"
  done
  stop_depot
  kv_table
}

main "$@"
