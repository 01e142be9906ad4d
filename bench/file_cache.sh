#!/usr/bin/env bash
# The file cache with big files: one 1 GiB upload and its download, then 10 parallel 1 GiB
# uploads, with wall times and Depot's peak RSS (VmHWM); and the download against nginx serving
# the same stored file statically (sendfile both). KBase's auth is the Lua stub from tests/stubs,
# served by the same Depot. Then Depot's CPU per MiB uploaded: 16 sockets each upload ROUNDS files
# of 1 MiB (bench/upload_clients.py), against the goal of 1 ms per MiB, and the req/s against
# the original's 53 (issue 11). Needs ~12 GiB free under TMPDIR. Not run in CI.
#
# Environment: FILE_BYTES (default 1073741824), PARALLEL (10), DOWNLOAD_ROUNDS (3), ROUNDS (20),
# DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILE_BYTES=${FILE_BYTES:-1073741824}
PARALLEL=${PARALLEL:-10}
DOWNLOAD_ROUNDS=${DOWNLOAD_ROUNDS:-3}
ROUNDS=${ROUNDS:-20}
ORIGINAL_SMALL_UPLOADS_PER_SECOND=53 # Flask/gunicorn+gevent, 16 concurrent 1 MiB uploads (issue 11)
AUTH="Authorization: non_admin_token"
NGINX_PID=""

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth"}},
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]}],
 "watch_scripts": false}
JSON
}

new_cache_id() { # port label
  curl -sS -X POST "http://127.0.0.1:$1/v1/cache_id" -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"bench\": \"$2-$RANDOM$RANDOM\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cache_id"])'
}

upload() { # port cache-id file
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' -H "$AUTH" -F "file=@$3;filename=big.bin" \
    "http://127.0.0.1:$1/v1/cache/$2")
  [ "$status" = 200 ] || die "upload of $2 answered HTTP $status"
}

# Seconds one download to /dev/null took (curl's own clock); fails unless 200 with every byte.
download_seconds() { # url [header]
  local result status size seconds
  result=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' ${2:+-H "$2"} "$1")
  read -r status size seconds <<<"$result"
  if [ "$status" != 200 ] || [ "$size" != "$FILE_BYTES" ]; then die "GET $1 answered HTTP $status with $size bytes"; fi
  echo "$seconds"
}

# The fastest of DOWNLOAD_ROUNDS downloads (the file is in the page cache for every round).
best_download_seconds() { # url [header]
  local best="" seconds
  for _ in $(seq "$DOWNLOAD_ROUNDS"); do
    seconds=$(download_seconds "$@")
    best=$(awk -v a="$best" -v b="$seconds" 'BEGIN { print (a == "" || b < a) ? b : a }')
  done
  echo "$best"
}

seconds_of() { # command...
  local started finished
  started=$(seconds_now)
  "$@"
  finished=$(seconds_now)
  awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.2f", b - a }'
}

stop_nginx() {
  [ -n "$NGINX_PID" ] || return 0
  stop_process "$NGINX_PID"
  NGINX_PID=""
}

start_nginx() { # port directory
  mkdir -p "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp"
  cat >"$WORK_DIR/nginx/nginx.conf" <<NGINX
worker_processes 2; daemon on; pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:$1; location /static/ { alias $2/; } } }
NGINX
  nginx -p "$WORK_DIR/nginx/" -c nginx.conf -e "$WORK_DIR/nginx/logs/error.log"
  for _ in $(seq 50); do [ -s "$WORK_DIR/nginx/logs/nginx.pid" ] && break; sleep 0.1; done
  NGINX_PID=$(cat "$WORK_DIR/nginx/logs/nginx.pid")
  STOP_ON_EXIT+=(stop_nginx)
}

mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# 16 sockets x ROUNDS uploads of 1 MiB of random bytes, kept alive; reports req/s and Depot's CPU
# per MiB (utime + stime over the run, the auth stub's few lookups included). Twice: each socket
# to its own cache id again and again (every upload replaces a file: ext4 then writes the new one
# back and frees the old one inside rename, in Depot's time), then each upload to a fresh id.
upload_cpu_per_mib() { # port
  local client=$BENCH_DIR/upload_clients.py result ticks rate fresh label
  python3 "$client" --port "$1" --new-ids 16 --ids "$WORK_DIR/ids"
  python3 "$client" --port "$1" --new-ids $((16 * ROUNDS)) --ids "$WORK_DIR/fresh_ids"
  python3 "$client" --port "$1" --pid "$DEPOT_PID" --ids "$WORK_DIR/ids" --connections 16 --rounds 1 --size 1048576 \
    >/dev/null # warm-up
  for fresh in "" --fresh; do
    if [ -n "$fresh" ]; then label="each to a fresh cache id"; else label="replacing the files"; fi
    ticks=$(cpu_ticks "$DEPOT_PID")
    result=$(python3 "$client" --port "$1" --pid "$DEPOT_PID" --ids "$WORK_DIR/${fresh:+fresh_}ids" $fresh \
      --connections 16 --rounds "$ROUNDS" --size 1048576)
    ticks=$(($(cpu_ticks "$DEPOT_PID") - ticks))
    python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1])["failed"] != 0)' "$result" || die "uploads failed: $result"
    rate=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["requests_per_s"])' "$result")
    report "16 parallel x $ROUNDS uploads of 1 MiB, $label: $rate req/s" \
      "($(awk -v r="$rate" -v o="$ORIGINAL_SMALL_UPLOADS_PER_SECOND" 'BEGIN { printf "%.1f", r / o }')x the original's" \
      "$ORIGINAL_SMALL_UPLOADS_PER_SECOND), Depot CPU $(cpu_ms_per_mib "$ticks" $((16 * ROUNDS * 1048576))) ms per MiB (goal < 1)"
  done
}

main() {
  require_depot_tools
  require_command nginx nginx
  begin_run
  # nginx's workers run as another user (nobody) when started as root: they must reach the file.
  chmod 755 "$WORK_DIR"
  local port nginx_port source id stored hwm_start hwm_single hwm_parallel upload_s depot_s nginx_s parallel_s ids=()
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  report "file cache with big files ($FILE_BYTES bytes each)"
  report_environment
  source=$WORK_DIR/big.bin
  head -c "$FILE_BYTES" /dev/urandom >"$source"

  # The first requests load the routes, the auth lookup and the kv database: warm them up.
  upload "$port" "$(new_cache_id "$port" warmup)" /etc/hostname
  hwm_start=$(memory_kb "$DEPOT_PID" VmHWM)

  id=$(new_cache_id "$port" single)
  upload_s=$(seconds_of upload "$port" "$id" "$source")
  hwm_single=$(memory_kb "$DEPOT_PID" VmHWM)
  depot_s=$(best_download_seconds "http://127.0.0.1:$port/v1/cache/$id" "$AUTH")
  stored=$WORK_DIR/data/file_cache/${id:0:2}/$id
  cmp -s "$source" "$stored" || die "the stored file differs from the upload"
  nginx_port=$(free_port)
  start_nginx "$nginx_port" "$(dirname "$stored")"
  nginx_s=$(best_download_seconds "http://127.0.0.1:$nginx_port/static/$id")
  stop_nginx

  for i in $(seq "$PARALLEL"); do ids+=("$(new_cache_id "$port" "parallel-$i")"); done
  parallel_upload() {
    local pids=() i
    for i in "${ids[@]}"; do
      upload "$port" "$i" "$source" &
      pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
  }
  parallel_s=$(seconds_of parallel_upload)
  hwm_parallel=$(memory_kb "$DEPOT_PID" VmHWM)

  report ""
  report "one upload:                 $upload_s s ($(awk -v b="$FILE_BYTES" -v s="$upload_s" 'BEGIN { printf "%.0f", b / 1048576 / s }') MiB/s)"
  report "its download (best of $DOWNLOAD_ROUNDS):   Depot $depot_s s, nginx static $nginx_s s;" \
    "nginx/Depot speed: $(awk -v d="$depot_s" -v n="$nginx_s" 'BEGIN { printf "%.2f", n / d }')"
  report "$PARALLEL parallel uploads:        $parallel_s s ($(awk -v b="$FILE_BYTES" -v n="$PARALLEL" -v s="$parallel_s" 'BEGIN { printf "%.0f", n * b / 1048576 / s }') MiB/s in all)"
  report "Depot VmHWM:                $(mib "$hwm_start") MiB after warm-up, $(mib "$hwm_single") MiB after one upload" \
    "(+$(mib $((hwm_single - hwm_start))) MiB), $(mib "$hwm_parallel") MiB after $PARALLEL parallel" \
    "(+$(mib $((hwm_parallel - hwm_start))) MiB)"
  rm -rf "$WORK_DIR/data/file_cache"
  upload_cpu_per_mib "$port"
  report "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  end_run
}

main "$@"
