#!/usr/bin/env bash
# The users service's costs: (1) the policy's access-token check per request — the hello route
# guarded by scripts/users/policy.lua against the same route unguarded, req/s ratio; (2) login
# throughput with the default argon2id cost (64 MiB, 2 passes, on the thread pool) while /health
# is probed, with /health's p99 before and during the logins. Depot with 2 reactor threads,
# measured with wrk on 127.0.0.1.
#
# Environment: DURATION seconds per wrk run (8), LOGIN_CONNECTIONS (4), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION=${DURATION:-8}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-4}
SECRET=bench-secret
ADMIN=admin@example.com
PASSWORD=bench-password

require_command wrk wrk
require_depot_tools
begin_run
PORT=$(free_port)
cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "users", "mount": ["/"], "config": {"ENABLE_AUTH": "true", "JWT_SECRET_KEY": "$SECRET",
   "JWT_ADMIN": "$ADMIN", "JWT_ADMIN_PASSWORD": "$PASSWORD", "LOGIN_MAX_FAILURES": 1000000,
   "LOGIN_MAX_FAILURES_PER_ADDRESS": 1000000}},
  {"name": "open", "script": "hello", "mount": ["/open"]},
  {"name": "guarded", "script": "hello", "mount": ["/guarded"],
   "config": {"auth": "users", "ENABLE_AUTH": "true", "JWT_SECRET_KEY": "$SECRET"}}],
 "watch_scripts": false}
JSON
start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$PORT" warn
LOGIN_BODY="{\"email\": \"$ADMIN\", \"password\": \"$PASSWORD\"}"
TOKEN=""
for _ in $(seq 100); do
  TOKEN=$(curl -s -X POST "http://127.0.0.1:$PORT/login" -H 'Content-Type: application/json' -d "$LOGIN_BODY" |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("access_token", ""))' 2>/dev/null || true)
  [ -n "$TOKEN" ] && break
  sleep 0.1
done
[ -n "$TOKEN" ] || die "the admin could not log in"
[ "$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/guarded/hello")" = hello ] ||
  die "the guarded route refused the token"

requests_per_second() { awk '/^Requests\/sec:/ { print $2 }'; }
p99() { awk '$1 == "99%" { print $2 }'; }

report_environment
open_rps=$(wrk -t2 -c64 -d"$DURATION" "http://127.0.0.1:$PORT/open/hello" | requests_per_second)
guarded_rps=$(wrk -t2 -c64 -d"$DURATION" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/guarded/hello" |
  requests_per_second)
report "hello unguarded:        $open_rps req/s"
report "hello behind the policy: $guarded_rps req/s"
report "policy ratio (guarded/unguarded): $(awk -v a="$guarded_rps" -v b="$open_rps" 'BEGIN { printf "%.3f", a / b }')"

health_idle=$(wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$PORT/open/health" | p99)
cat >"$WORK_DIR/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '$LOGIN_BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$DURATION" -s "$WORK_DIR/login.lua" "http://127.0.0.1:$PORT/login" \
  >"$WORK_DIR/login.txt" &
LOGIN_WRK=$!
health_busy=$(wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$PORT/open/health" | p99)
wait "$LOGIN_WRK"
report "logins ($LOGIN_CONNECTIONS connections, argon2id 64 MiB/2 passes): $(requests_per_second <"$WORK_DIR/login.txt") logins/s"
report "/health p99: $health_idle idle, $health_busy during the logins"
