#!/usr/bin/env bash
# The floor under the image cache's POST /requests: the same wrk load (post_requests_load in
# bench/common.sh: -t2 -c16, a distinct 3.8 KB query per request, CPU counted until every
# background fetch ended) against routes that each add one piece of a POST's work
# (bench/scripts/post_floor): (a) parse the JSON body and answer an id; (b) + the durable,
# group-committed kv record of a pending entry like the image cache's; (c) + one background
# http.request to a trivial route; (d) + the same request to the Kentik stub (tests/stubs); (e)
# the image cache itself. One Depot serves all of them, the stub included. Prints each step's
# req/s, p99 and server CPU per request, what the step added, and its CPU's share of (e)'s.
#
# PROFILE=<a..e> instead runs that step once under LuaJIT's sampling profiler (jit.profile on one
# worker, bench/scripts/lua_profile) and prints where its Lua time went.
#
# COSTS=1 instead times the pieces of a POST one by one in a worker (GET /lua_profile/costs).
#
# CALLGRIND=<a..e> instead runs Depot under callgrind and prints the instructions per POST of POSTS
# (1000) POSTs to that step, and the functions that cost most (load-independent figures).
#
# SYSCALLS=<a..e> instead sends POSTS (1000) distinct POSTs to that step over 16 connections with
# `strace -c -f` attached to Depot, and prints pwrite64, fdatasync and all syscalls per POST.
#
# Environment: DURATION (8 s per step), ROUNDS (2: the steps in turn, each round in the opposite
# order), STEPS ("a b c d e"), PROFILE, SYSCALLS, POSTS, DEPOT_BINARY (build/depot), SCRIPTS_DIR
# (the repo's scripts/: another version's, with its binary, measures that version's step (e)). Not
# run in CI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-a b c d e}
PROFILE=${PROFILE:-}
SCRIPTS_DIR=${SCRIPTS_DIR:-$REPO_DIR/scripts}

declare -A STEP_PATH=([a]=/floor/parse [b]=/floor/record [c]=/floor/fetch [d]=/floor/kentik [e]=/requests)
declare -A STEP_TITLE=(
  [a]="(a) parse the JSON body, answer an id"
  [b]="(b) + durable group-committed record"
  [c]="(c) + background http to a trivial route"
  [d]="(d) + the Kentik stub instead"
  [e]="(e) the image cache's POST /requests"
)

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "kentik_api", "script": "$REPO_DIR/tests/stubs/kentik_api", "mount": ["/kentik"]},
  {"name": "post_floor", "script": "$BENCH_DIR/scripts/post_floor", "mount": ["/"], "config": {
   "KENTIK_API_URL": "http://127.0.0.1:$1/kentik", "FLOOR_URL": "http://127.0.0.1:$1/floor/upstream"}},
  {"name": "lua_profile", "script": "$BENCH_DIR/scripts/lua_profile", "mount": ["/"]},
  {"name": "image_cache", "mount": ["/"], "config": {"KT_AUTH_EMAIL": "test@example.com",
   "KT_AUTH_TOKEN": "secret-token", "KENTIK_API_URL": "http://127.0.0.1:$1/kentik"}}],
 "watch_scripts": false, "log_level": "warn"}
JSON
}

# The background requests of steps (c) and (d) still in flight, from the server's gauge.
floor_pending_count() { # port
  curl -sS "http://127.0.0.1:$1/metrics" | awk '$1 == "bench_floor_pending" { v = $2 } END { printf "%d\n", v }'
}

pending_command() { # step
  if [ "$1" = e ]; then echo image_cache_pending_count; else echo floor_pending_count; fi
}

# Prints where the Lua time of one run of `step` went.
profile_step() { # port step
  curl -sS -X POST "http://127.0.0.1:$1/lua_profile/start" >/dev/null
  post_requests_load "$1" "$DURATION" "profile" "${STEP_PATH[$2]}" "$(pending_command "$2")" >/dev/null
  report "${STEP_TITLE[$2]}: $POST_RATE req/s, $POST_CPU_MS ms CPU per request, under the profiler"
  report "$(curl -sS -X POST "http://127.0.0.1:$1/lua_profile/stop")"
}

# POSTs `count` distinct 3.8 KB queries (named after `name`) to `step` over 16 connections, then
# waits until every background request they caused ended.
post_distinct() { # port step count name
  /usr/bin/python3 - "$1" "${STEP_PATH[$2]}" "$3" "$4" <<'PY'
import http.client, json, sys, threading
port, path, count, name = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
padding = "w" * 3700
def post(first):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(first, count, 16):
        query = {"api_query": {"imageType": "png", "padding": padding, "stub": {"name": "%s-%d" % (name, i)}}, "ttl": 600}
        connection.request("POST", path, json.dumps(query), {"Content-Type": "application/json"})
        assert connection.getresponse().read()
threads = [threading.Thread(target=post, args=(first,)) for first in range(16)]
for thread in threads: thread.start()
for thread in threads: thread.join()
PY
  while [ "$("$(pending_command "$2")" "$1")" -gt 0 ]; do sleep 0.1; done
}

# Prints the syscalls per POST of `count` POSTs to `step`, fetches and the stub included.
count_syscalls() { # port step count
  local port=$1 step=$2 count=$3 strace_pid
  require_command strace strace
  strace -c -f -o "$WORK_DIR/strace.txt" -p "$DEPOT_PID" 2>/dev/null &
  strace_pid=$!
  sleep 1 # attached to every thread
  post_distinct "$port" "$step" "$count" strace
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  report "${STEP_TITLE[$step]}: syscalls per POST over $count POSTs (strace -c -f):" \
    "$(awk -v n="$count" '$NF == "pwrite64" || $NF == "fdatasync" { printf "%s %.2f, ", $NF, $4 / n } $NF == "total" { printf "all %.1f", $4 / n }' "$WORK_DIR/strace.txt")"
}

# Prints the instructions per POST (callgrind, load-independent) of `count` POSTs to `step`, fetches
# and the stub included, after 100 to warm up, and the functions that cost most.
count_instructions() { # port step count
  local port=$1 step=$2 count=$3
  require_command callgrind_control valgrind
  post_distinct "$port" "$step" 100 warmup
  callgrind_control -z "$DEPOT_PID" >/dev/null
  post_distinct "$port" "$step" "$count" counted
  callgrind_control -d "$DEPOT_PID" >/dev/null
  sleep 1
  # callgrind_control -d wrote the counted part (.1); the other is what ran after it.
  local profile
  profile=$(ls "$WORK_DIR"/callgrind.out.*.1)
  report "${STEP_TITLE[$step]}: $(callgrind_annotate --inclusive=no "$profile" 2>/dev/null |
    awk -v n="$count" '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%.0f k instructions per POST", $1 / n / 1000 }')" \
    "over $count POSTs (callgrind); the functions that cost most, per POST (the thread entry points," \
    "which count what they call, left out):"
  callgrind_annotate --inclusive=no --threshold=100 "$profile" 2>/dev/null | awk -v n="$count" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; next }
    total && $1 ~ /^[0-9,]+$/ { v = $1; gsub(",", "", v); v += 0; if (v > total / 2 || shown++ >= 15) next
      $1 = ""; $2 = ""; printf "  %7.1f k %s\n", v / n / 1000, substr($0, 1, 150) }' | tee -a "$RESULTS_FILE"
}

main() {
  require_command wrk wrk
  require_depot_tools
  begin_run
  local port round step order
  report "POST /requests floor: each step's CPU per request against the image cache's"
  report_environment
  port=$(free_port)
  write_config "$port"
  if [ -n "${CALLGRIND:-}" ]; then
    # Depot under callgrind: a wrapper as the binary, its profile in the scratch directory.
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p %s "$@"\n' \
      "$WORK_DIR" "$DEPOT_BINARY" >"$WORK_DIR/depot-callgrind"
    chmod +x "$WORK_DIR/depot-callgrind"
    DEPOT_BINARY=$WORK_DIR/depot-callgrind
  fi
  start_depot "$WORK_DIR/depot.json" "$SCRIPTS_DIR" "$port" warn
  if [ -n "${CALLGRIND:-}" ]; then
    count_instructions "$port" "$CALLGRIND" "${POSTS:-1000}"
    return
  fi
  if [ "${COSTS:-0}" = 1 ]; then
    report "the pieces of a POST, timed alone in a worker (bench/scripts/lua_profile):"
    report "$(curl -sS "http://127.0.0.1:$port/lua_profile/costs")"
    return
  fi
  if [ -n "${SYSCALLS:-}" ]; then
    count_syscalls "$port" "$SYSCALLS" "${POSTS:-1000}"
    return
  fi
  if [ -n "$PROFILE" ]; then
    profile_step "$port" "$PROFILE"
    return
  fi
  declare -A cpu rate p99
  order=$STEPS
  for round in $(seq "$ROUNDS"); do
    for step in $order; do
      post_requests_load "$port" "$DURATION" "r$round" "${STEP_PATH[$step]}" "$(pending_command "$step")" >/dev/null
      log "round $round ${STEP_TITLE[$step]}: $POST_RATE req/s, p99 $POST_P99, $POST_CPU_MS ms"
      cpu[$step]="${cpu[$step]:-} $POST_CPU_MS"
      rate[$step]="${rate[$step]:-} $POST_RATE"
      p99[$step]="${p99[$step]:-} $POST_P99"
    done
    order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
  done
  # The median of the rounds (the lower middle for an even count), and what it adds to the step
  # before; the share is of (e)'s median when (e) ran.
  median() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  local full="" previous="" median_cpu
  [ -z "${cpu[e]:-}" ] || full=$(median ${cpu[e]})
  report "$(printf '%-44s %9s %9s %10s %9s %9s  %s' step req/s p99 "CPU ms" added "of (e)" "rounds (CPU ms)")"
  for step in $STEPS; do
    median_cpu=$(median ${cpu[$step]})
    report "$(printf '%-44s %9s %9s %10s %9s %9s  %s' "${STEP_TITLE[$step]}" "$(median ${rate[$step]})" \
      "$(echo ${p99[$step]} | tr ' ' '\n' | head -1)" "$median_cpu" \
      "$([ -z "$previous" ] && echo - || awk -v a="$median_cpu" -v b="$previous" 'BEGIN { printf "%+.3f", a - b }')" \
      "$([ -z "$full" ] && echo - || awk -v a="$median_cpu" -v b="$full" 'BEGIN { printf "%.2f", a / b }')" \
      "${cpu[$step]# }")"
    previous=$median_cpu
  done
  report "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
