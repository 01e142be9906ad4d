#!/usr/bin/env bash
# The file cache with big files: one 1 GiB upload and download, then 10 parallel 1 GiB uploads,
# with wall time and Depot's peak RSS (VmHWM); and the download time against nginx serving the
# same stored file statically. KBase's auth is the Lua stub from tests/stubs, served by the same
# Depot. Needs ~12 GiB free under TMPDIR. Not run in CI.
#
# Environment: FILE_BYTES (default 1073741824), PARALLEL (10), DEPOT_BINARY (build/depot).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FILE_BYTES=${FILE_BYTES:-1073741824}
PARALLEL=${PARALLEL:-10}
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
AUTH="Authorization: non_admin_token"

write_config() { # port
  cat >"$WORK_DIR/depot.json" <<JSON
{"services": [
  {"name": "kbase_auth", "script": "$REPO_DIR/tests/stubs/kbase_auth", "mount": ["/auth"]},
  {"name": "file_cache", "mount": ["/"], "config": {"KBASE_AUTH_URL": "http://127.0.0.1:$1/auth"}}],
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

seconds_of() { # command...
  local started finished
  started=$(seconds_now)
  "$@"
  finished=$(seconds_now)
  awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.2f", b - a }'
}

main() {
  require_depot_tools
  require_command nginx nginx
  begin_run
  local port nginx_port source id stored hwm_start hwm_single hwm_after upload_s download_s nginx_s parallel_s ids=()
  port=$(free_port)
  write_config "$port"
  start_depot "$WORK_DIR/depot.json" "$REPO_DIR/scripts" "$port" warn
  report "file cache with big files"
  report_environment
  source=$WORK_DIR/big.bin
  head -c "$FILE_BYTES" /dev/urandom >"$source"
  hwm_start=$(memory_kb "$DEPOT_PID" VmHWM)

  id=$(new_cache_id "$port" single)
  upload_s=$(seconds_of upload "$port" "$id" "$source")
  hwm_single=$(memory_kb "$DEPOT_PID" VmHWM)
  curl -sS -f -H "$AUTH" -o "$WORK_DIR/download.bin" "http://127.0.0.1:$port/v1/cache/$id"
  cmp -s "$source" "$WORK_DIR/download.bin" || die "the download differs from the upload"
  rm -f "$WORK_DIR/download.bin"
  # Timed into /dev/null, for both servers: the client's disk must not be what is measured.
  download_s=$(seconds_of curl -sS -f -H "$AUTH" -o /dev/null "http://127.0.0.1:$port/v1/cache/$id")
  report "one upload of $FILE_BYTES bytes:   $upload_s s (Depot VmHWM $hwm_start -> $hwm_single kB)"
  report "its download (to /dev/null):   $download_s s"

  stored=$WORK_DIR/data/file_cache/${id:0:2}/$id
  nginx_port=$(free_port)
  mkdir -p "$WORK_DIR/nginx/logs" "$WORK_DIR/nginx/tmp"
  # Workers as root: the stored file sits in this run's private (0700) work directory.
  cat >"$WORK_DIR/nginx/nginx.conf" <<NGINX
user root; worker_processes 2; daemon on; pid logs/nginx.pid; error_log logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; sendfile on; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fcgi; uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  server { listen 127.0.0.1:$nginx_port; location /static/ { alias $(dirname "$stored")/; } } }
NGINX
  nginx -p "$WORK_DIR/nginx/" -c nginx.conf -e "$WORK_DIR/nginx/logs/error.log"
  sleep 0.5
  nginx_s=$(seconds_of curl -sS -f -o /dev/null "http://127.0.0.1:$nginx_port/static/$id")
  kill -QUIT "$(cat "$WORK_DIR/nginx/logs/nginx.pid")"
  report "nginx serving the same file:   $nginx_s s  (Depot/nginx download time: $(awk -v d="$download_s" -v n="$nginx_s" 'BEGIN { printf "%.2f", d / n }'))"

  for i in $(seq "$PARALLEL"); do ids+=("$(new_cache_id "$port" "parallel-$i")"); done
  parallel_upload() {
    local pids=() i
    for i in "${ids[@]}"; do upload "$port" "$i" "$source" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i"; done
  }
  parallel_s=$(seconds_of parallel_upload)
  hwm_after=$(memory_kb "$DEPOT_PID" VmHWM)
  report "$PARALLEL parallel uploads:          $parallel_s s"
  report "Depot VmHWM:                   $hwm_start kB at start, $hwm_after kB after all uploads (+$(( (hwm_after - hwm_start) / 1024 )) MiB)"
  end_run
}

main "$@"
