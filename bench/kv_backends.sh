#!/usr/bin/env bash
# kv from Lua on PostgreSQL against LMDB (bench/scripts/kv_backends): puts, gets and updates per
# second from one task (durable and batched handles), and CLIENTS concurrent clients each making
# INCREMENTS updates of one shared counter (updates per second, and the exact total checked).
# PostgreSQL is a throwaway local server (tests/support/postgres.sh: unix socket, fsync off, so
# its figures leave out the disk as LMDB's batched ones do). Prints PostgreSQL/LMDB ratios.
# bench/scale_out.sh calls it too.
#
# Environment: DEPOT_BINARY (build/depot), OPS (2000), CLIENTS (8), INCREMENTS (100).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OPS=${OPS:-2000}
CLIENTS=${CLIENTS:-8}
INCREMENTS=${INCREMENTS:-100}
POSTGRES_SCRIPT="$REPO_DIR/tests/support/postgres.sh"

stop_postgres() { [ -z "${POSTGRES_DIR:-}" ] || "$POSTGRES_SCRIPT" stop "$POSTGRES_DIR"; }
STOP_ON_EXIT+=(stop_postgres)

# One backend's figures as a JSON object: {"batched": ..., "durable": ..., "contended": ...}.
measure() { # config-file
  local port started elapsed
  port=$(free_port)
  start_depot "$1" "$BENCH_DIR/scripts" "$port" warn
  local batched durable
  batched=$(curl -sS "http://127.0.0.1:$port/ops?n=$OPS&durable=0")
  durable=$(curl -sS "http://127.0.0.1:$port/ops?n=$OPS&durable=1")
  started=$(date +%s.%N)
  seq "$CLIENTS" | xargs -P "$CLIENTS" -I{} curl -sS -o /dev/null -X POST "http://127.0.0.1:$port/increment?n=$INCREMENTS"
  elapsed=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$started" "$(date +%s.%N)")
  local total
  total=$(curl -sS "http://127.0.0.1:$port/counter")
  stop_depot
  python3 - "$batched" "$durable" "$total" "$elapsed" "$((CLIENTS * INCREMENTS))" <<'PY'
import json, sys
batched, durable, total = (json.loads(a) for a in sys.argv[1:4])
elapsed, expected = float(sys.argv[4]), int(sys.argv[5])
print(json.dumps({"batched": batched, "durable": durable,
                  "contended": {"updates_per_s": int(expected / elapsed), "total": total["n"],
                                "expected": expected}}))
PY
}

main() {
  require_depot_tools
  [ -x "$POSTGRES_SCRIPT" ] || die "no $POSTGRES_SCRIPT"
  begin_run
  report "kv on PostgreSQL vs LMDB, from Lua ($OPS ops each; $CLIENTS clients x $INCREMENTS contended updates)"
  report_environment
  cat >"$WORK_DIR/lmdb.json" <<JSON
{"services": [{"name": "kv_backends", "script": "kv_backends", "mount": ["/"]}], "watch_scripts": false}
JSON
  local lmdb postgres url
  lmdb=$(measure "$WORK_DIR/lmdb.json")
  rm -rf "$WORK_DIR/data" && mkdir -p "$WORK_DIR/data"
  # Not under WORK_DIR: mktemp made that 0700, and the server runs as the postgres user.
  POSTGRES_DIR=$(mktemp -u "${TMPDIR:-/tmp}/depot-bench-postgres.XXXXXX")
  url=$("$POSTGRES_SCRIPT" start "$POSTGRES_DIR")
  cat >"$WORK_DIR/postgres.json" <<JSON
{"services": [{"name": "kv_backends", "script": "kv_backends", "mount": ["/"]}], "watch_scripts": false,
 "storage": {"kv": "$url"}}
JSON
  postgres=$(measure "$WORK_DIR/postgres.json")
  report "lmdb:     $lmdb"
  report "postgres: $postgres"
  python3 - "$lmdb" "$postgres" <<'PY' | while read -r line; do report "$line"; done
import json, sys
lmdb, postgres = (json.loads(a) for a in sys.argv[1:3])
for mode in ("batched", "durable"):
    for op in ("puts_per_s", "gets_per_s", "updates_per_s"):
        print(f"ratio postgres/lmdb {mode:7} {op:14} {postgres[mode][op] / lmdb[mode][op]:.3f}")
print(f"ratio postgres/lmdb contended updates_per_s {postgres['contended']['updates_per_s'] / lmdb['contended']['updates_per_s']:.3f}")
for name, figures in (("lmdb", lmdb), ("postgres", postgres)):
    c = figures["contended"]
    print(f"{name} counter total {c['total']} of {c['expected']}: {'exact' if c['total'] == c['expected'] else 'WRONG'}")
PY
}

main "$@"
