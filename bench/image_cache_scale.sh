#!/usr/bin/env bash
# The image cache at the sizes users bring: for 2,000 / 5,000 / 10,000 live entries, the time of
# one GET /info and the server's RSS growth while it answers; the p99 and longest answer of a
# probe request (GET /favicon.ico every 2 ms) while the periodic prune removes all of them, next to
# the same before any expired (the machine's own noise, large on a loaded one), with the prune's
# own share told apart: each prune step logs its span at debug level, and the probes that overlap
# a step are counted apart from those that do not; and POST /requests throughput (wrk, 16
# connections, a distinct 3.8 KB query per request) with p99, server CPU per request and peak RSS
# (post_requests_load in bench/common.sh). The Kentik API is the Lua stub from tests/stubs, served
# by the same Depot. Not run in CI.
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

# Fills the cache with `count` entries expiring `ttl` seconds after each was posted (over 8
# connections, so that a loaded machine still fills it well before they expire), waits until all
# are fetched; prints the Unix times at which the first and the last of them expire.
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
last_expiry = time.time() + ttl
connection = http.client.HTTPConnection("127.0.0.1", port)
while True:
    connection.request("GET", "/info")
    if json.loads(connection.getresponse().read())["pending_count"] == 0: break
    time.sleep(0.2)
print("%.3f %.3f" % (first_expiry, last_expiry))
PY
}

# Prints the seconds, the server's CPU (load-independent, 10 ms ticks) and the peak RSS growth for
# one GET /info, sampling RSS every 5 ms.
info_once() { # port
  local before peak seconds ticks
  before=$(memory_kb "$DEPOT_PID" VmRSS)
  start_rss_sampler "$DEPOT_PID"
  sleep 0.05
  ticks=$(cpu_ticks "$DEPOT_PID")
  seconds=$(curl -sS -o "$WORK_DIR/info.json" -w '%{time_total}' "http://127.0.0.1:$1/info")
  ticks=$(($(cpu_ticks "$DEPOT_PID") - ticks))
  sleep 0.05
  peak=$(stop_rss_sampler)
  awk -v s="$seconds" -v t="$ticks" -v hz="$CLOCK_TICKS_PER_SECOND" -v b="$before" -v p="$peak" \
    'BEGIN { printf "%.3f s (server CPU %.0f ms), RSS +%.1f MB", s, t * 1000 / hz, (p - b) / 1024 }'
}

# Probes GET /favicon.ico every 2 ms until Unix time `until`; prints its p99 and longest answer
# times before `since` (normal latency on this machine now) and from then on (during the prunes),
# and the prune steps the server logged at debug level in `log`: how long each held its worker
# (wall clock, and the process's CPU time meanwhile: on a loaded machine the difference is time
# spent waiting for a CPU), and the longest probe answer that overlapped a step against the longest of the others: a stall
# the prune caused overlaps one of its steps, the machine's noise falls anywhere.
longest_stall() { # port until since log
  /usr/bin/python3 - "$@" <<'PY'
import bisect, http.client, json, sys, time
port, until, since, log = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", port)
before, during = [], []  # (wall-clock start, seconds)
while time.time() < until:
    start, started = time.time(), time.monotonic()
    connection.request("GET", "/favicon.ico")
    connection.getresponse().read()
    (before if start < since else during).append((start, time.monotonic() - started))
    time.sleep(0.002)
steps = []
with open(log) as lines:
    for line in lines:
        if '"image cache prune step"' in line:
            step = json.loads(line)
            steps.append((float(step["started"]), float(step["seconds"]), float(step["cpu_seconds"])))
steps.sort()
starts = [step[0] for step in steps]
def overlaps(probe):  # steps run one after another, so only the last one begun can overlap
    i = bisect.bisect_right(starts, probe[0] + probe[1]) - 1
    return i >= 0 and starts[i] + steps[i][1] > probe[0]
def figures(times):
    if not times: return "no probes"
    times = sorted(times)
    return "p99 %.1f ms, longest %.1f ms" % (times[int(len(times) * 0.99)] * 1000, times[-1] * 1000)
inside = [seconds for start, seconds in during if overlaps((start, seconds))]
outside = [seconds for start, seconds in during if not overlaps((start, seconds))]
def spread(values):
    if not values: return "none"
    values = sorted(values)
    return "p50 %.2f ms, p99 %.2f ms, longest %.2f ms" % (
        values[len(values) // 2] * 1000, values[int(len(values) * 0.99)] * 1000, values[-1] * 1000)
print("probe %s during the prunes (normal: %s); %d probes overlapped one of %d prune steps: %s, "
      "the %d others: %s; a step held its worker %s (wall), the process's CPU over a step %s" % (
      figures([seconds for _, seconds in during]), figures([seconds for _, seconds in before]),
      len(inside), len(steps), figures(inside), len(outside), figures(outside),
      spread([step[1] for step in steps]), spread([step[2] for step in steps])))
PY
}

main() {
  require_depot_tools
  begin_run
  local port size ttl first_expiry last_expiry
  report "image cache at scale: /info, prune stalls, POST throughput"
  report_environment
  for size in $SIZES; do
    port=$(free_port)
    write_config "$port"
    start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" debug
    # Long enough that a loaded machine fills the cache before the first entry expires.
    ttl=$((40 + size / 250))
    read -r first_expiry last_expiry < <(fill "$port" "$size" "$ttl" "fill$size")
    report "$size entries: GET /info $(info_once "$port"); again $(info_once "$port")"
    # Every entry expires `ttl` after it was posted; the 1 s prune then removes them all.
    local stall
    stall=$(longest_stall "$port" "$(awk -v t="$last_expiry" 'BEGIN { printf "%.3f", t + 3 }')" "$first_expiry" "$WORK_DIR/depot.log")
    report "$size entries: $stall (now $(curl -sS "http://127.0.0.1:$port/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["active_count"])') left)"
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
