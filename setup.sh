#!/usr/bin/env bash
# Installs everything Depot needs to build, test and benchmark, from Debian packages only.
# Idempotent: packages already present are skipped. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libpistache-dev libluajit2-5.1-dev liblmdb-dev libsodium-dev nlohmann-json3-dev
  libcurl4-openssl-dev libhttp-parser-dev catch2
  curl python3 python3-requests python3-pytest
  chromium
  prometheus  # promtool checks /metrics' text format; the metrics test scrapes with a real prometheus
  clang libclang-rt-14-dev  # the fuzz harnesses (libFuzzer and clang's sanitizer runtimes)
)
# The browser test runs on node; a node that came from elsewhere (with its own npm) is kept.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ "${1:-}" = "--bench" ]; then
  packages+=(wrk nginx libnginx-mod-http-lua lua-resty-core lua-cjson)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # policy-rc.d keeps Debian's nginx package from starting a system nginx on :80.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# playwright-core for the browser test (tests/browser), without a browser of its own: the test
# drives Debian's chromium. The copied lockfile marks node_modules as current, so a rerun skips it.
browser_tests="$(cd "$(dirname "$0")" && pwd)/tests/browser"
if cmp -s "$browser_tests/package-lock.json" "$browser_tests/node_modules/.installed-lock.json"; then
  echo "setup: tests/browser/node_modules current"
else
  echo "setup: npm ci in tests/browser"
  (cd "$browser_tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$browser_tests/package-lock.json" "$browser_tests/node_modules/.installed-lock.json"
fi
