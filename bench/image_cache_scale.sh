#!/usr/bin/env bash
# The image cache at the sizes users bring: for 2,000 / 5,000 / 10,000 live entries, the time of
# one GET /info and the server's RSS growth while it answers; the p99 and longest answer of a
# probe request (GET /favicon.ico every 2 ms) while the periodic prune removes all of them, next to
# the same before any expired (the machine's own noise, large on a loaded one); and
# POST /requests throughput (wrk, 16 connections, a distinct 3.8 KB query per request) with p99
# and server CPU per request (post_requests_load in bench/common.sh). The Kentik API is the Lua
# stub from tests/stubs, served by the same Depot. Not run in CI.
#
# Environment: SIZES ("2000 5000 10000"), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SIZES=${SIZES:-2000 5000 10000}
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "kentik_api", "script": "$REPO_DIR/tests/stubs/kentik_api", "mount": ["/kentik"]},
  {"name": "image_cache", "mount": ["/"], "config": {"KT_AUTH_EMAIL": "test@example.com",
   "KT_AUTH_TOKEN": "secret-token", "KENTIK_API_URL": "http://127.0.0.1:$1/kentik",
   "CACHE_MAINTENANCE_PERIOD": 1}}],
 "watch_scripts": false, "log_level": "warn"}
JSON
}

# Fills the cache with `count` entries expiring `ttl` seconds from now (over 8 connections, so
# that a loaded machine still fills it well before they expire), waits until all are fetched;
# prints the Unix time at which the first of them expires.
fill() { # port count ttl run
  /usr/bin/python3 - "$@" <<'PY'
import http.client, json, sys, threading, time
port, count, ttl, run = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
padding = "x" * 3700  # the issue's 3.8 KB queries
first_expiry = time.time() + ttl
def post(first):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(first, count, 8):
        query = {"api_query": {"imageType": "png", "padding": padding, "stub": {"name": "%s-%d" % (run, i)}}, "ttl": ttl}
        connection.request("POST", "/requests", json.dumps(query), {"Content-Type": "application/json"})
        connection.getresponse().read()
threads = [threading.Thread(target=post, args=(first,)) for first in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
connection = http.client.HTTPConnection("127.0.0.1", port)
while True:
    connection.request("GET", "/info")
    if json.loads(connection.getresponse().read())["pending_count"] == 0: break
    time.sleep(0.2)
print("%.3f" % first_expiry)
PY
}

# Prints the seconds, the server's CPU (load-independent, 10 ms ticks) and the peak RSS growth for
# one GET /info, sampling RSS every 5 ms.
info_once() { # port
  local before peak sampler seconds ticks
  before=$(memory_kb "$DEPOT_PID" VmRSS)
  ( peak=0; while :; do v=$(memory_kb "$DEPOT_PID" VmRSS); [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" >"$WORK_DIR/peak"; }; sleep 0.005; done ) &
  sampler=$!
  sleep 0.05
  ticks=$(cpu_ticks "$DEPOT_PID")
  seconds=$(curl -sS -o "$WORK_DIR/info.json" -w '%{time_total}' "http://127.0.0.1:$1/info")
  ticks=$(($(cpu_ticks "$DEPOT_PID") - ticks))
  sleep 0.05
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  peak=$(cat "$WORK_DIR/peak")
  awk -v s="$seconds" -v t="$ticks" -v hz="$CLOCK_TICKS_PER_SECOND" -v b="$before" -v p="$peak" \
    'BEGIN { printf "%.3f s (server CPU %.0f ms), RSS +%.1f MB", s, t * 1000 / hz, (p - b) / 1024 }'
}

# Probes GET /favicon.ico every 2 ms for `seconds`; prints its p99 and longest answer times before
# `since` (Unix time: normal latency on this machine now) and from then on (during the prunes).
longest_stall() { # port seconds since
  /usr/bin/python3 - "$@" <<'PY'
import http.client, sys, time
port, seconds, since = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
connection = http.client.HTTPConnection("127.0.0.1", port)
end, before, during = time.monotonic() + seconds, [], []
while time.monotonic() < end:
    start = time.monotonic()
    connection.request("GET", "/favicon.ico")
    connection.getresponse().read()
    (before if time.time() < since else during).append(time.monotonic() - start)
    time.sleep(0.002)
def figures(times):
    if not times: return "no probes"
    times.sort()
    return "p99 %.1f ms, longest %.1f ms" % (times[int(len(times) * 0.99)] * 1000, times[-1] * 1000)
print("%s during the prunes (normal: %s)" % (figures(during), figures(before)))
PY
}

main() {
  require_depot_tools
  begin_run
  local port size first_expiry
  report "image cache at scale: /info, prune stalls, POST throughput"
  report_environment
  for size in $SIZES; do
    port=$(free_port)
    write_config "$port"
    start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
    first_expiry=$(fill "$port" "$size" 40 "fill$size")
    report "$size entries: GET /info $(info_once "$port"); again $(info_once "$port")"
    # Every entry expires 40 s after it was posted; the 1 s prune then removes them all.
    local stall
    stall=$(longest_stall "$port" 45 "$first_expiry")
    report "$size entries: probe answers while they expire and are pruned: $stall (now $(curl -sS "http://127.0.0.1:$port/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["active_count"])') left)"
    stop_depot
    rm -rf "$WORK_DIR/data"
  done
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  post_requests_load "$port" 8 scale
  report "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  end_run
}

main "$@"
