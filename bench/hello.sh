#!/usr/bin/env bash
# Route comparison: Depot (2 reactor threads) against nginx + lua-nginx-module (2 workers,
# content_by_lua_block), both on 127.0.0.1, measured with wrk in alternating rounds. Reports
# req/s, p50/p99 latency and server CPU per request, and the Depot/nginx req/s ratio.
# ROUTE picks the route: hello (scripts/hello), json (a small table encoded; cjson on nginx) or
# kv (one kv read; a shared dict on nginx), both from bench/scripts/routes.
# Method and nginx.conf follow /work/shared/notes/reactor-design.md §6.1 so the figures compare
# with the prototype's. Neither server writes access logs: Depot runs at --log-level warn (its
# access log is at info) and nginx has access_log off.
#
# Environment: ROUTE (hello, json or kv), JIT=1 (the Depot service opts into LuaJIT's compiler,
# giving up preemption of compiled loops), ROUNDS (default 3), DURATION seconds per wrk run (8),
# WARMUP seconds (2), DEPOT_BINARY (build/depot), KEEP_WORK_DIR=1 to keep the server logs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
ROUTE=${ROUTE:-hello}
JIT=${JIT:-0}
case "$ROUTE" in hello | json | kv) ;; *) die "ROUTE must be hello, json or kv, not '$ROUTE'" ;; esac
NGINX_MODULES_DIR=/usr/lib/nginx/modules
# No Connection header: HTTP/1.1 keep-alive by default is what real clients rely on, and a server
# that closes such connections must show up in the numbers (toolchain.md §3).
WRK_OPTIONS=(-t2 -c64 --latency)

check_tools() {
  require_command wrk wrk
  require_command nginx nginx
  require_file "$NGINX_MODULES_DIR/ndk_http_module.so" libnginx-mod-http-ndk
  require_file "$NGINX_MODULES_DIR/ngx_http_lua_module.so" libnginx-mod-http-lua
  # lua-nginx-module 0.10.23 refuses to start without resty.core.
  require_file /usr/share/lua/5.1/resty/core.lua lua-resty-core
  [ "$ROUTE" != json ] || require_file /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so lua-cjson
  require_depot_tools
}

write_depot_config() {
  local service=routes jit=false
  [ "$ROUTE" != hello ] || service=hello
  [ "$JIT" != 1 ] || jit=true
  SCRIPTS_DIR=$BENCH_DIR/scripts
  [ "$ROUTE" != hello ] || SCRIPTS_DIR=$REPO_DIR/scripts
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [{"name": "$service", "script": "$service", "mount": ["/"], "jit": $jit}], "watch_scripts": false}
JSON
}

# The configuration of reactor-design.md §6, with the port filled in. Relative paths resolve
# against the prefix, so nginx touches nothing outside $WORK_DIR/nginx.
write_nginx_config() { # port
  mkdir -p "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp"
  cat >"$WORK_DIR/nginx/nginx.conf" <<NGINX
load_module $NGINX_MODULES_DIR/ndk_http_module.so;
load_module $NGINX_MODULES_DIR/ngx_http_lua_module.so;
worker_processes 2; daemon on; pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  lua_shared_dict bench 1m;
  init_by_lua_block { local found, module = pcall(require, "cjson"); cjson = found and module or nil; ngx.shared.bench:set("greeting", "hello\\n") }
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:$1;
    location = /hello { default_type text/plain; content_by_lua_block { ngx.print("hello\n") } }
    location = /json { default_type application/json;
      content_by_lua_block { ngx.print(cjson.encode({ message = "hello", items = { 1, 2, 3 }, ok = true })) } }
    location = /kv { default_type text/plain; content_by_lua_block { ngx.print(ngx.shared.bench:get("greeting")) } } } }
NGINX
}

# nginx daemonizes, so its master is not our child: NGINX_PID comes from its pid file.
start_nginx() { # port
  local prefix=$WORK_DIR/nginx
  # -e: errors before the config is read would otherwise go to /var/log/nginx.
  nginx -p "$prefix/" -c nginx.conf -e "$prefix/logs/error.log" ||
    die "nginx did not start: $(tail -n 5 "$prefix/logs/error.log" 2>/dev/null)"
  for _ in $(seq 50); do
    [ -s "$prefix/logs/nginx.pid" ] && break
    sleep 0.1
  done
  [ -s "$prefix/logs/nginx.pid" ] || die "nginx wrote no pid file: $(tail -n 5 "$prefix/logs/error.log")"
  NGINX_PID=$(cat "$prefix/logs/nginx.pid")
  wait_until_answering "$1" "$NGINX_PID" "$prefix/logs/error.log"
  mapfile -t NGINX_WORKER_PIDS < <(child_pids "$NGINX_PID")
  [ ${#NGINX_WORKER_PIDS[@]} -eq 2 ] || die "expected 2 nginx workers, found: ${NGINX_WORKER_PIDS[*]:-none}"
}

stop_nginx() {
  [ -n "${NGINX_PID:-}" ] || return 0
  stop_process "$NGINX_PID"
  NGINX_PID=""
}

# The nginx workers, found as the master's children (their CPU is what serves the requests).
child_pids() { # parent-pid
  local stat_file stat fields
  for stat_file in /proc/[0-9]*/stat; do
    stat=$(cat "$stat_file" 2>/dev/null) || continue
    read -r -a fields <<<"${stat##*) }" # fields[1] is field 4, the parent pid
    [ "${fields[1]}" = "$1" ] && echo "${stat%% *}"
  done
  return 0
}

# Both servers must send the same body (JSON: the same document, keys in any order), or the
# comparison measures different work. The response sizes go into the report because header bytes
# differ between the servers.
check_route() { # name port
  local body summary expected=hello
  body=$(curl -fsS --max-time 5 "http://127.0.0.1:$2/$ROUTE") || die "$1: GET /$ROUTE failed"
  if [ "$ROUTE" = json ]; then
    body=$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]), sort_keys=True))' "$body")
    expected='{"items": [1, 2, 3], "message": "hello", "ok": true}'
  fi
  [ "$body" = "$expected" ] || die "$1: GET /$ROUTE answered '$body' instead of '$expected'"
  summary=$(curl -sS -o /dev/null --max-time 5 -w '%{http_code}, %{size_header} header bytes + %{size_download} body bytes' \
    "http://127.0.0.1:$2/$ROUTE")
  report "$(printf '%-6s GET /%s -> %s' "$1" "$ROUTE" "$summary")"
}

# Prints "req/s p50_us p99_us requests seconds errors" from wrk's --latency output. Errors are socket
# errors (connect, read, write, timeout) plus non-2xx/3xx responses: any of them makes a round
# suspect, so they are reported rather than hidden.
parse_wrk() {
  awk '
    function microseconds(value) {
      if (value ~ /us$/) return value + 0
      if (value ~ /ms$/) return value * 1000
      if (value ~ /m$/) return value * 60000000
      if (value ~ /s$/) return value * 1000000
      return value + 0
    }
    $1 == "50%" { p50 = microseconds($2) }
    $1 == "99%" { p99 = microseconds($2) }
    /requests in/ { requests = $1; seconds = $4 + 0 }
    $1 == "Requests/sec:" { rate = $2 }
    /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    END { printf "%.0f %.0f %.0f %d %.2f %d\n", rate, p50, p99, requests, seconds, errors }'
}

# Latencies are kept in microseconds and shown as "262 us" or "3.82 ms" by this one awk function.
AWK_LATENCY='function latency(us) { return us < 1000 ? sprintf("%d us", us) : sprintf("%.2f ms", us / 1000) }'

format_latency() { # microseconds
  awk -v us="$1" "$AWK_LATENCY"' BEGIN { printf "%s", latency(us) }'
}

# One wrk run against one server; appends "server req/s p50 p99 cpu_us_per_request cores errors"
# to $WORK_DIR/rows and prints the table row. Server CPU is utime+stime across the run.
measure() { # round name port pid...
  local round=$1 name=$2 port=$3 output ticks_before ticks_after rate p50 p99 requests seconds errors cpu_per_request cores
  shift 3
  ticks_before=$(cpu_ticks "$@")
  output=$(wrk "${WRK_OPTIONS[@]}" -d"${DURATION}s" "http://127.0.0.1:$port/$ROUTE")
  ticks_after=$(cpu_ticks "$@")
  printf '=== round %s, %s ===\n%s\n' "$round" "$name" "$output" >>"$WORK_DIR/wrk-output"
  read -r rate p50 p99 requests seconds errors < <(parse_wrk <<<"$output")
  [ "$requests" -gt 0 ] || die "$name: wrk completed no requests:
$output"
  cpu_per_request=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLOCK_TICKS_PER_SECOND" -v n="$requests" \
    'BEGIN { printf "%.2f", t / hz * 1000000 / n }')
  cores=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLOCK_TICKS_PER_SECOND" -v d="$seconds" \
    'BEGIN { printf "%.2f", t / hz / d }')
  echo "$name $rate $p50 $p99 $cpu_per_request $cores $errors" >>"$WORK_DIR/rows"
  report "$(printf '%5s  %-6s %10s %10s %10s %12s %6s %7s' "$round" "$name" "$rate" "$(format_latency "$p50")" \
    "$(format_latency "$p99")" "$cpu_per_request" "$cores" "$errors")"
}

measure_depot() { measure "$1" depot "$DEPOT_PORT" "$DEPOT_PID"; }
measure_nginx() { measure "$1" nginx "$NGINX_PORT" "${NGINX_WORKER_PIDS[@]}"; }

# Mean and range of each column per server, then the Depot/nginx ratios.
report_summary() {
  report ""
  report "summary over $ROUNDS rounds: mean (min-max)"
  awk "$AWK_LATENCY"'
    function track(key, value) {
      sum[key] += value
      if (!(key in low) || value < low[key]) low[key] = value
      if (!(key in high) || value > high[key]) high[key] = value
    }
    {
      count[$1]++
      track($1 " rate", $2); track($1 " p50", $3); track($1 " p99", $4); track($1 " cpu", $5); track($1 " cores", $6)
      errors[$1] += $7
    }
    END {
      split("depot nginx", servers, " ")
      for (i = 1; i <= 2; i++) {
        server = servers[i]
        n = count[server]
        printf "  %-6s req/s %.0f (%.0f-%.0f) | p50 %s (%s-%s) | p99 %s (%s-%s) | CPU/request %.2f us (%.2f-%.2f) | server cores %.2f | errors %d\n",
          server, sum[server " rate"] / n, low[server " rate"], high[server " rate"],
          latency(sum[server " p50"] / n), latency(low[server " p50"]), latency(high[server " p50"]),
          latency(sum[server " p99"] / n), latency(low[server " p99"]), latency(high[server " p99"]),
          sum[server " cpu"] / n, low[server " cpu"], high[server " cpu"], sum[server " cores"] / n, errors[server]
      }
      printf "  ratio Depot/nginx: req/s %.3f, CPU per request %.3f\n",
        (sum["depot rate"] / count["depot"]) / (sum["nginx rate"] / count["nginx"]),
        (sum["depot cpu"] / count["depot"]) / (sum["nginx cpu"] / count["nginx"])
    }' "$WORK_DIR/rows" | tee -a "$RESULTS_FILE"
}

main() {
  check_tools
  STOP_ON_EXIT+=(stop_nginx)
  begin_run

  DEPOT_PORT=$(free_port)
  NGINX_PORT=$(free_port)
  while [ "$NGINX_PORT" = "$DEPOT_PORT" ]; do NGINX_PORT=$(free_port); done
  write_depot_config
  write_nginx_config "$NGINX_PORT"
  log "starting Depot on port $DEPOT_PORT and nginx on port $NGINX_PORT"
  start_depot "$WORK_DIR/depot.json" "$SCRIPTS_DIR" "$DEPOT_PORT" warn
  start_nginx "$NGINX_PORT"

  report "$ROUTE-route benchmark: Depot vs nginx + lua-nginx-module"
  report_environment
  report "nginx:    $(nginx -v 2>&1 | sed 's/^nginx version: //'), 2 workers, content_by_lua_block, access_log off"
  report "depot:    2 reactor threads, --log-level warn (no access log), JIT $([ "$JIT" = 1 ] && echo on || echo "off (preemption hook on)")"
  report "client:   wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') ${WRK_OPTIONS[*]} -d${DURATION}s http://127.0.0.1:PORT/$ROUTE (no Connection header)"
  report "          on the same machine, so wrk shares the CPUs with the server: compare ratios, not absolute req/s"
  report "rounds:   $ROUNDS, after ${WARMUP}s of wrk warm-up per server; the order alternates each round"
  check_route depot "$DEPOT_PORT"
  check_route nginx "$NGINX_PORT"

  log "warming up (${WARMUP}s each)"
  wrk "${WRK_OPTIONS[@]}" -d"${WARMUP}s" "http://127.0.0.1:$DEPOT_PORT/$ROUTE" >/dev/null
  wrk "${WRK_OPTIONS[@]}" -d"${WARMUP}s" "http://127.0.0.1:$NGINX_PORT/$ROUTE" >/dev/null

  report ""
  report "$(printf '%5s  %-6s %10s %10s %10s %12s %6s %7s' round server req/s p50 p99 "CPU/req(us)" cores errors)"
  for round in $(seq "$ROUNDS"); do
    log "round $round of $ROUNDS"
    # Alternating who goes first cancels slow drifts (thermal, other load) between the servers.
    if [ $((round % 2)) -eq 1 ]; then
      measure_depot "$round"
      measure_nginx "$round"
    else
      measure_nginx "$round"
      measure_depot "$round"
    fi
    process_alive "$DEPOT_PID" || die "Depot died during round $round"
  done
  report_summary
  report "load avg after: $(cut -d' ' -f1-3 /proc/loadavg)"

  { echo; echo "raw wrk output"; cat "$WORK_DIR/wrk-output"; } >>"$RESULTS_FILE"
  log "results written to $RESULTS_FILE"
}

main "$@"
