#!/usr/bin/env bash
# Memory across hot reloads: starts Depot with the hello service, sends SIGHUP 1000 times (each
# time waiting for the next script generation to load) and reports VmRSS after 10 and after 1000
# reloads. Each reload builds fresh Lua states and retires the old ones, so RSS that keeps
# growing with the reload count means retired generations are not freed.
# Finally checks that GET /hello still answers 200 "hello".
#
# Depot runs at --log-level info here, unlike the other benches: the "scripts loaded" line that
# marks a finished reload is an info line. Only the final check makes an access-log line.
#
# Environment: FIRST_RELOADS (default 10), TOTAL_RELOADS (1000), SETTLE seconds before each
# reading (2), DEPOT_BINARY (build/depot), KEEP_WORK_DIR=1 to keep the server log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FIRST_RELOADS=${FIRST_RELOADS:-10}
TOTAL_RELOADS=${TOTAL_RELOADS:-1000}
# Retired generations may be freed only once their last request ends or on a periodic sweep,
# so RSS is read after a pause rather than right after the last reload.
SETTLE=${SETTLE:-2}

# A private copy of the scripts, so an editor saving into the repo's scripts/ mid-run cannot
# change what is reloaded.
write_depot_config() {
  cp -r "$REPO_DIR/scripts" "$WORK_DIR/scripts"
  cat >"$WORK_DIR/depot.json" <<'JSON'
{"services": [{"name": "hello", "script": "hello", "mount": ["/"]}], "watch_scripts": false}
JSON
}

# Waits until the log has a "scripts loaded" line for generation N (nlohmann sorts the keys, so
# both fields are matched separately rather than in one order).
wait_for_generation() { # N
  local pattern="\"generation\": *$1[,}]"
  for _ in $(seq 1000); do
    grep '"msg": *"scripts loaded"' "$WORK_DIR/depot.log" | grep -q "$pattern" && return 0
    grep -q '"msg": *"scripts refused' "$WORK_DIR/depot.log" &&
      die "a reload was refused: $(grep '"msg": *"scripts refused' "$WORK_DIR/depot.log" | tail -n 1)"
    process_alive "$DEPOT_PID" || die "Depot exited while reloading generation $1"
    sleep 0.01
  done
  die "generation $1 was not loaded within 10 s"
}

# Reloads until generation `target` serves; `generation` holds the one serving now (the load at
# startup is generation 1).
generation=1
reload_until() { # target-generation
  while [ "$generation" -lt "$1" ]; do
    kill -HUP "$DEPOT_PID"
    generation=$((generation + 1))
    wait_for_generation "$generation"
  done
}

# The mean of the "ms" field of the "scripts loaded" lines after startup: Depot's own timing of
# a reload, free of this script's polling interval.
mean_reload_ms() {
  python3 - "$WORK_DIR/depot.log" <<'PYTHON'
import json, sys
times = []
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("msg") == "scripts loaded" and entry.get("generation", 0) > 1:
        times.append(float(entry.get("ms", 0)))
print("%.2f" % (sum(times) / len(times)) if times else "unknown")
PYTHON
}

rss_after_settling() {
  sleep "$SETTLE"
  memory_kb "$DEPOT_PID" VmRSS
}

check_hello() { # port
  local body status
  status=$(curl -sS -o "$WORK_DIR/hello" --max-time 5 -w '%{http_code}' "http://127.0.0.1:$1/hello") ||
    die "GET /hello failed after the reloads"
  body=$(<"$WORK_DIR/hello")
  if [ "$status" != 200 ] || [ "$body" != hello ]; then
    die "GET /hello answered $status '$body' after the reloads"
  fi
  report "GET /hello after $TOTAL_RELOADS reloads: $status, body '$body'"
}

main() {
  require_depot_tools
  begin_run

  local port rss_start rss_first rss_total started finished load_ms
  port=$(free_port)
  write_depot_config
  start_depot "$WORK_DIR/depot.json" "$WORK_DIR/scripts" "$port" info
  wait_for_generation "$generation"

  report "hot reloads: VmRSS of Depot"
  report_environment
  report "server:   2 reactor threads, hello service, reloads by SIGHUP, --log-level info (see the script header)"
  rss_start=$(rss_after_settling)

  log "reloading $FIRST_RELOADS times"
  reload_until $((FIRST_RELOADS + 1))
  rss_first=$(rss_after_settling)

  log "reloading up to $TOTAL_RELOADS times"
  started=$(seconds_now)
  reload_until $((TOTAL_RELOADS + 1))
  finished=$(seconds_now)
  rss_total=$(rss_after_settling)
  load_ms=$(mean_reload_ms)

  awk -v start="$rss_start" -v first="$rss_first" -v total="$rss_total" -v first_count="$FIRST_RELOADS" \
    -v total_count="$TOTAL_RELOADS" -v seconds="$(awk -v a="$started" -v b="$finished" 'BEGIN { print b - a }')" \
    -v load_ms="$load_ms" 'BEGIN {
      printf "VmRSS:    %d kB at start, %d kB after %d reloads, %d kB after %d reloads\n", start, first, first_count, total, total_count
      printf "growth:   %+d kB (%+.1f MiB) from %d to %d reloads, %+.2f kB per reload\n",
        total - first, (total - first) / 1024, first_count, total_count, (total - first) / (total_count - first_count)
      printf "time:     %s ms per reload as Depot logs it; %.1f ms per reload from SIGHUP until this script saw\n", load_ms,
        seconds * 1000 / (total_count - first_count)
      printf "          the \"scripts loaded\" line (reloads %d to %d, polling every 10 ms)\n", first_count + 1, total_count
    }' | tee -a "$RESULTS_FILE"
  check_hello "$port"
  log "results written to $RESULTS_FILE"
}

main "$@"
