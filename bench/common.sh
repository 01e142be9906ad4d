# Shared helpers for the bench scripts (sourced, not run): tool checks, a scratch directory,
# starting and stopping Depot, /proc counters, and the results file every script writes.
# The scripts stay reproducible by never depending on the caller's environment: Depot runs from
# the scratch directory (so a developer's ./.env is not read) and without DEPOT_* variables.
# shellcheck shell=bash disable=SC2034  # the globals set here are read by the sourcing scripts

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
DEPOT_BINARY=${DEPOT_BINARY:-$REPO_DIR/build/depot}
CLOCK_TICKS_PER_SECOND=$(getconf CLK_TCK)
BENCH_NAME=$(basename "$0" .sh)

# Progress goes to stderr; results go through report() to stdout and the results file.
log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

require_command() { # command debian-package
  command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found: install the Debian package $2 (./setup.sh --bench installs every bench tool)"
}

require_file() { # path debian-package
  [ -e "$1" ] || die "$1 not found: install the Debian package $2 (./setup.sh --bench installs every bench tool)"
}

# What every bench needs: curl to talk to Depot, python3 for free ports and JSON, and the binary.
require_depot_tools() {
  require_command curl curl
  require_command python3 python3
  require_depot_binary
}

require_depot_binary() {
  [ -x "$DEPOT_BINARY" ] ||
    die "no Depot binary at $DEPOT_BINARY: build it with
  cd $REPO_DIR && cmake -S . -B build && cmake --build build -j2 --target depot
or point DEPOT_BINARY at one"
}

# Starts a run: a scratch directory for everything it creates (configs, logs, nginx prefix,
# upload target), the results file, and the exit trap that stops every server and removes the
# scratch directory (unless KEEP_WORK_DIR=1, to read the server logs after a failure).
# Scripts that start other servers add their stop functions to STOP_ON_EXIT.
STOP_ON_EXIT=(stop_depot)

begin_run() {
  WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/depot-bench.XXXXXX")
  mkdir -p "$WORK_DIR/data"
  trap end_run EXIT
  trap 'exit 130' INT TERM
  open_results_file
}

end_run() {
  local status=$? stop
  for stop in "${STOP_ON_EXIT[@]}"; do "$stop"; done
  # A partial report must not pass for a finished one.
  if [ "$status" -ne 0 ] && [ -n "${RESULTS_FILE:-}" ]; then
    echo "INCOMPLETE: the run stopped early (exit status $status)" >>"$RESULTS_FILE"
  fi
  if [ "${KEEP_WORK_DIR:-0}" = 1 ]; then
    log "kept $WORK_DIR"
  else
    rm -rf "$WORK_DIR"
  fi
}

# A port the kernel considers free right now. Depot is started with a fixed port rather than
# port 0 because at --log-level warn it does not print the "listening" line that names the port.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Results: one file per run under bench/results/ (gitignored), named <bench>-<timestamp>.txt.
open_results_file() {
  mkdir -p "$BENCH_DIR/results"
  RESULTS_FILE="$BENCH_DIR/results/$BENCH_NAME-$(date +%Y%m%d-%H%M%S).txt"
  : >"$RESULTS_FILE"
}

report() { printf '%s\n' "$*" | tee -a "$RESULTS_FILE"; }

report_environment() {
  local cpu_model commit build_type
  cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo "none (no commit yet)")
  # The optimisation level moves every figure, so say which build was measured.
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(dirname "$DEPOT_BINARY")/CMakeCache.txt" 2>/dev/null || true)
  report "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  report "machine:  $(uname -srm), $(nproc) CPUs (${cpu_model:-unknown model})"
  report "binary:   $DEPOT_BINARY (${build_type:-unknown} build of $(date -u -r "$DEPOT_BINARY" +%Y-%m-%dT%H:%M:%SZ)), repo HEAD $commit"
  report "load avg: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
}

# Starts Depot in the background on 127.0.0.1 with 2 reactor threads and sets DEPOT_PID.
# Its JSON log goes to $WORK_DIR/depot.log. Returns once it answers HTTP.
start_depot() { # config-file scripts-dir port log-level
  local config=$1 scripts=$2 port=$3 level=$4 binary=$DEPOT_BINARY
  (
    cd "$WORK_DIR" || exit
    while read -r name; do unset "$name"; done < <(compgen -e | grep '^DEPOT_' || true)
    exec "$binary" serve --config "$config" --port "$port" --host 127.0.0.1 --threads 2 \
      --scripts "$scripts" --data-dir "$WORK_DIR/data" --log-level "$level"
  ) 2>"$WORK_DIR/depot.log" &
  DEPOT_PID=$!
  wait_until_answering "$port" "$DEPOT_PID" "$WORK_DIR/depot.log"
}

stop_depot() {
  [ -n "${DEPOT_PID:-}" ] || return 0
  stop_process "$DEPOT_PID"
  DEPOT_PID=""
}

# Any HTTP answer counts: the server has bound its port and runs its event loop.
wait_until_answering() { # port pid log-file
  local port=$1 pid=$2 log_file=$3
  for _ in $(seq 100); do
    if ! process_alive "$pid"; then
      tail -n 20 "$log_file" >&2 || true
      die "the server (pid $pid) exited during startup; its log is above"
    fi
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  tail -n 20 "$log_file" >&2 || true
  die "the server (pid $pid) did not answer on port $port within 10 s"
}

# A zombie (our exited but not yet reaped child) still passes `kill -0`, so look at its state.
process_alive() { # pid
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# SIGTERM (graceful stop for both Depot and nginx), then SIGKILL after 10 s.
stop_process() { # pid
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    process_alive "$pid" || break
    sleep 0.1
  done
  if process_alive "$pid"; then
    log "pid $pid ignored SIGTERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true # reaps it if it is our child
}

# utime + stime in clock ticks, summed over the given processes (each total covers all threads).
cpu_ticks() { # pid...
  local total=0 pid stat fields
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat")
    read -r -a fields <<<"${stat##*) }" # fields[0] is field 3 (state): utime is 14, stime 15
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# A memory figure from /proc/PID/status (VmRSS, VmHWM, …) in kB.
memory_kb() { # pid field
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

seconds_now() { date +%s.%N; }

# Samples `pid`'s VmRSS every 5 ms into $WORK_DIR/rss_peak (kB, the highest seen) until
# stop_rss_sampler; VmHWM would also count whatever the server did before.
start_rss_sampler() { # pid
  memory_kb "$1" VmRSS >"$WORK_DIR/rss_peak"
  (
    peak=$(cat "$WORK_DIR/rss_peak")
    while :; do
      v=$(memory_kb "$1" VmRSS)
      [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" >"$WORK_DIR/rss_peak"; }
      sleep 0.005
    done
  ) >/dev/null &
  RSS_SAMPLER_PID=$!
}

# Stops the sampler; prints the peak VmRSS it saw, in kB.
stop_rss_sampler() {
  kill "$RSS_SAMPLER_PID"
  wait "$RSS_SAMPLER_PID" 2>/dev/null || true
  cat "$WORK_DIR/rss_peak"
}

# Depot CPU milliseconds per MiB received, from clock ticks over a run.
cpu_ms_per_mib() { # ticks bytes
  awk -v t="$1" -v hz="$CLOCK_TICKS_PER_SECOND" -v b="$2" 'BEGIN { printf "%.2f", t * 1000 / hz / (b / 1048576) }'
}

# --- file cache uploads (upload_concurrency.sh, blob_s3.sh) ---

json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# bench/upload_clients.py against the file cache of Depot ($DEPOT_PID), one cache id per connection
# from $WORK_DIR/ids; prints its JSON, and dies unless every upload answered 200.
run_clients() { # port connections rounds bytes
  local result
  result=$(python3 "$BENCH_DIR/upload_clients.py" --port "$1" --pid "$DEPOT_PID" --ids "$WORK_DIR/ids" \
    --connections "$2" --rounds "$3" --size "$4")
  [ "$(json_field "$result" failed)" = 0 ] || die "uploads failed: $result"
  echo "$result"
}

# --- image cache POST /requests load (image_cache.sh, image_cache_scale.sh) ---

# The original image cache (FastAPI/uvicorn) on this project's 2-core machine type, same stub and
# client (issue 11): the reference of the ratio printed.
ORIGINAL_POST_REQUESTS_PER_SECOND=360

# wrk -t2 -c16 for `seconds`, each request a distinct 3.8 KB query (thread number and counter in
# the stub name, and `label` so that two runs against one server never share a query), then
# waits until every fetch it caused is settled. Reports req/s, p99, the ratio to the original and
# Depot's CPU per request from the first request until the last fetch settled (fetches and the
# same-server Kentik stub included, so a backlog of fetches cannot flatter the figure), and
# Depot's peak RSS over the same span.
# `path` (default /requests) and `pending` (a command given the port that prints how many fetches
# are unsettled; default: the image cache's /info) let bench/post_floor.sh load its floor routes.
# Leaves the figures in POST_RATE (req/s), POST_P99 and POST_CPU_MS (per request).
post_requests_load() { # port seconds label [path [pending]]
  local port=$1 seconds=$2 label=$3 path=${4:-/requests} pending=${5:-image_cache_pending_count}
  local ticks_before ticks_after requests rate pending_before rss_before rss_peak
  pending_before=$("$pending" "$port")
  cat >"$WORK_DIR/post.lua" <<'LUA'
-- thread:set writes a global of the thread's own state: thread_number must be one (as a local,
-- every thread kept 0 and sent the other's queries, half of them answered from the cache).
local threads, counter, run = 0, 0, ""
thread_number = 0
function setup(thread) threads = threads + 1; thread:set("thread_number", threads) end
function init(args) run = args[1] end
local padding = string.rep("y", 3700)
request = function()
  counter = counter + 1
  local body = string.format('{"api_query": {"imageType": "png", "padding": "%s", "stub": {"name": "post-%s-%d-%d"}}, "ttl": 600}',
    padding, run, thread_number, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
LUA
  rss_before=$(memory_kb "$DEPOT_PID" VmRSS)
  start_rss_sampler "$DEPOT_PID"
  ticks_before=$(cpu_ticks "$DEPOT_PID")
  wrk -t2 -c16 -d"${seconds}s" --latency -s "$WORK_DIR/post.lua" "http://127.0.0.1:$port$path" -- "$label" \
    >"$WORK_DIR/wrk.txt"
  while [ "$("$pending" "$port")" -gt "$pending_before" ]; do sleep 0.1; done
  ticks_after=$(cpu_ticks "$DEPOT_PID")
  rss_peak=$(stop_rss_sampler)
  requests=$(awk '/requests in/ {print $1}' "$WORK_DIR/wrk.txt")
  rate=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK_DIR/wrk.txt")
  POST_RATE=$rate
  POST_P99=$(awk '/ 99%/ {print $2}' "$WORK_DIR/wrk.txt")
  POST_CPU_MS=$(awk -v t=$((ticks_after - ticks_before)) -v n="$requests" -v hz="$CLOCK_TICKS_PER_SECOND" 'BEGIN { printf "%.3f", t / hz * 1000 / n }')
  report "POST $path, 16 connections, distinct 3.8 KB queries: $rate req/s" \
    "($(awk -v r="$rate" -v o="$ORIGINAL_POST_REQUESTS_PER_SECOND" 'BEGIN { printf "%.1f", r / o }')x the original's" \
    "$ORIGINAL_POST_REQUESTS_PER_SECOND), p99 $POST_P99, server CPU $POST_CPU_MS ms" \
    "per request (its fetch and the stub included), Depot's RSS $((rss_before / 1024)) MB before, peak" \
    "$((rss_peak / 1024)) MB (the original's: 63 MB), after: $(($(memory_kb "$DEPOT_PID" RssAnon) / 1024)) MB" \
    "anonymous + $(($(memory_kb "$DEPOT_PID" RssFile) / 1024)) MB file pages (LMDB's map); errors: $(awk '/Non-2xx|Socket errors/' "$WORK_DIR/wrk.txt" | tr -s ' ' | tr '\n' ' ')"
}

image_cache_pending_count() { # port
  curl -sS "http://127.0.0.1:$1/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pending_count"])'
}

# --- S3 (blob_s3.sh, scale_out.sh) ---

# s3rver from tests/s3 (bucket "depot", credentials S3RVER/S3RVER) with its objects under
# $WORK_DIR/s3; sets S3_PORT. Scripts that call it add stop_s3rver to STOP_ON_EXIT.
S3RVER_PID=""

stop_s3rver() {
  [ -n "$S3RVER_PID" ] || return 0
  stop_process "$S3RVER_PID"
  S3RVER_PID=""
}

start_s3rver() {
  require_command node nodejs
  [ -d "$REPO_DIR/tests/s3/node_modules/s3rver" ] || die "s3rver missing: run ./setup.sh (npm ci in tests/s3)"
  node --openssl-legacy-provider "$REPO_DIR/tests/s3/server.js" "$WORK_DIR/s3" >"$WORK_DIR/s3rver.log" 2>&1 &
  S3RVER_PID=$!
  for _ in $(seq 100); do
    S3_PORT=$(awk '/^listening/ { print $2 }' "$WORK_DIR/s3rver.log")
    [ -n "$S3_PORT" ] && return 0
    sleep 0.1
  done
  die "s3rver did not start: $(cat "$WORK_DIR/s3rver.log")"
}
