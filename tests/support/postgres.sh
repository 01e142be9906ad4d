#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and bench scripts (tests/support/postgres_server.cpp runs
# it too, so the recipe lives here once):
#   postgres.sh start DIR   initdb's a cluster in DIR, starts it listening only on a unix socket
#                           in DIR, prints its URL (for libpq and "storage": {"kv": ...})
#   postgres.sh stop DIR    stops it at once and removes DIR
# PostgreSQL refuses to run as root, so as root the cluster belongs to the unprivileged `postgres`
# user (Debian's package creates it); DIR's parents must let that user through. Speed over
# durability: fsync is off (a test's data outlives no crash), commits still wait for the WAL write.
set -euo pipefail

command="${1:-}"
dir="${2:-}"
if [ -z "$dir" ] || { [ "$command" != start ] && [ "$command" != stop ]; }; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
bin="${DEPOT_POSTGRES_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: no PostgreSQL server binaries (install Debian's postgresql)" >&2
  exit 3
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  id "$owner" >/dev/null 2>&1 || owner=nobody
  as_owner=(runuser -u "$owner" --)
fi

case "$command" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ ${#as_owner[@]} -eq 0 ] || chown "$owner" "$dir"
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U depot -A trust -E UTF8 --locale=C \
      --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
      -o "-k $dir -c listen_addresses= -c fsync=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql:///postgres?host=$dir&port=5432&user=depot"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -s stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
esac
