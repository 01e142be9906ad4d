#!/usr/bin/env bash
# The image cache under waiting readers and across a restart: /info latency (wrk --latency) with
# no readers waiting, then while READERS clients wait on a pending image (the Kentik stub holds
# its answer); the seconds from a restart until PENDING entries left pending are refetched; and
# POST /requests throughput with p99 and CPU per request (post_requests_load in bench/common.sh).
# The Kentik API is the Lua stub from tests/stubs, served by the same Depot. Not run in CI.
#
# Environment: READERS (1000), PENDING (50), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

READERS=${READERS:-1000}
PENDING=${PENDING:-50}
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "kentik_api", "script": "$REPO_DIR/tests/stubs/kentik_api", "mount": ["/kentik"]},
  {"name": "image_cache", "mount": ["/"], "config": {"KT_AUTH_EMAIL": "test@example.com",
   "KT_AUTH_TOKEN": "secret-token", "KENTIK_API_URL": "http://127.0.0.1:$1/kentik",
   "KENTIK_API_TIMEOUT": 120, "ENTRY_WAIT_TIMEOUT": 120}}],
 "watch_scripts": false}
JSON
}

post_query() { # port name delay
  curl -sS -X POST "http://127.0.0.1:$1/requests" -H 'Content-Type: application/json' \
    -d "{\"api_query\": {\"imageType\": \"png\", \"stub\": {\"name\": \"$2\", \"delay\": $3}}, \"ttl\": 600}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

info_latency() { # port label
  wrk -t1 -c4 -d5s --latency "http://127.0.0.1:$1/info" >"$WORK_DIR/wrk.txt"
  report "$(printf '%-28s' "$2") $(awk '/Requests\/sec/ {printf "%8.0f req/s", $2} / 50%/ {printf "  p50 %s", $2} / 99%/ {printf "  p99 %s", $2}' "$WORK_DIR/wrk.txt")"
}

main() {
  ulimit -n 8192  # a thousand readers: their sockets on both sides
  require_depot_tools
  begin_run
  local port id started finished pending
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  report "image cache: waiting readers and restart recovery"
  report_environment
  info_latency "$port" "/info, no readers waiting"

  id=$(post_query "$port" held 30)
  /usr/bin/python3 - "$port" "$id" "$READERS" >"$WORK_DIR/readers.txt" 2>&1 <<'PY' &
import http.client, sys, threading
port, image, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def read():
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", "/image/" + image)
    connection.getresponse().read()
threads = [threading.Thread(target=read) for _ in range(count)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("readers done")
PY
  local readers=$!
  sleep 5
  report "readers connected:           $(ss -tn state established "( dport = :$port )" | tail -n +2 | wc -l) (target $READERS)"
  info_latency "$port" "/info, $READERS readers waiting"
  kill "$readers" 2>/dev/null || true

  # Posted from one process in a burst, so all are still pending (1 s each) when the server stops.
  /usr/bin/python3 - "$port" "$PENDING" <<'PY'
import http.client, json, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection("127.0.0.1", port)
for i in range(count):
    query = {"api_query": {"imageType": "png", "stub": {"name": "restart-%d" % i, "delay": 1}}, "ttl": 600}
    connection.request("POST", "/requests", json.dumps(query), {"Content-Type": "application/json"})
    connection.getresponse().read()
PY
  # Killed, not drained: a graceful stop would let the stub (same server) answer the fetches first.
  kill -KILL "$DEPOT_PID"
  wait "$DEPOT_PID" 2>/dev/null || true
  DEPOT_PID=""
  started=$(seconds_now)
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  while :; do
    pending=$(curl -sS "http://127.0.0.1:$port/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pending_count"])')
    [ "$pending" -le 1 ] && break  # the held entry stays pending for its 30 s
    sleep 0.05
  done
  finished=$(seconds_now)
  report "restart after SIGKILL with $PENDING+1 entries pending (stub answers after 1 s; the held one after 30 s)"
  report "  seconds from restart until the $PENDING are refetched: $(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.2f", b - a }')"
  post_requests_load "$port" 8 post
  report "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  end_run
}

main "$@"
