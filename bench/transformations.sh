#!/usr/bin/env bash
# The transformation API's listing at scale: REQUESTS submitted requests (10000), then
# GET /servicex/transformation streamed a page at a time. Reports the submit rate, the listing's
# time and size, the server's RSS growth while it lists (a listing built as one table would grow
# it by the whole answer), and /health's p99 idle and while listings run (the pause between pages
# lets the worker serve others). Depot with 2 reactor threads, auth off, on 127.0.0.1.
#
# Environment: REQUESTS (10000), DURATION seconds per wrk run (8), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REQUESTS=${REQUESTS:-10000}
DURATION=${DURATION:-8}

require_command wrk wrk
require_depot_tools
begin_run
PORT=$(free_port)
cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "users", "mount": ["/"], "config": {"ENABLE_AUTH": "false",
   "TRANSFORMER_VALIDATE_DOCKER_IMAGE": "false", "TRANSFORMER_DEFAULT_IMAGE": "sslhep/bench:1",
   "SERVICEX_MAX_PENDING_REQUESTS": 1000000}},
  {"name": "open", "script": "hello", "mount": ["/open"]}],
 "watch_scripts": false}
JSON
start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$PORT" warn

started=$(seconds_now)
python3 - "$PORT" "$REQUESTS" <<'PY'
import http.client, json, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"did": "rucio://bench", "columns": "e.pt", "result-destination": "volume"})
for _ in range(count):
    connection.request("POST", "/servicex/transformation", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"submit answered {response.status}")
PY
submitted=$(seconds_now)

report_environment
report "submitted $REQUESTS requests: $(awk -v n="$REQUESTS" -v a="$started" -v b="$submitted" 'BEGIN { printf "%.0f", n / (b - a) }') req/s (one connection, durable kv)"
rss_before=$(memory_kb "$DEPOT_PID" VmRSS)
listing=$(curl -s -o "$WORK_DIR/list.json" -w '%{time_total} %{size_download}' "http://127.0.0.1:$PORT/servicex/transformation")
rss_after=$(memory_kb "$DEPOT_PID" VmRSS)
listed=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["requests"]))' "$WORK_DIR/list.json")
[ "$listed" = "$REQUESTS" ] || die "the listing had $listed requests, not $REQUESTS"
read -r list_seconds list_bytes <<<"$listing"
report "listing $listed requests: ${list_seconds}s, $list_bytes bytes; RSS ${rss_before} kB before, ${rss_after} kB after (growth/answer size $(awk -v a="$rss_before" -v b="$rss_after" -v s="$list_bytes" 'BEGIN { printf "%.3f", (b - a) * 1024 / s }'))"

p99() { awk '$1 == "99%" { print $2 }'; }
health_idle=$(wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$PORT/open/health" | p99)
(
  end=$(($(date +%s) + DURATION))
  while [ "$(date +%s)" -lt "$end" ]; do curl -s -o /dev/null "http://127.0.0.1:$PORT/servicex/transformation"; done
) &
LISTER=$!
health_busy=$(wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$PORT/open/health" | p99)
wait "$LISTER"
report "/health p99: $health_idle idle, $health_busy while $REQUESTS-request listings run back to back"
