#!/usr/bin/env bash
# Installs everything Depot needs to build, test and benchmark, from Debian packages only.
# Idempotent: packages already present are skipped. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libpistache-dev libluajit2-5.1-dev liblmdb-dev libsodium-dev libxxhash-dev nlohmann-json3-dev
  libcurl4-openssl-dev libhttp-parser-dev catch2
  libpq-dev  # kv on PostgreSQL (bindings/kv_postgres*.cpp)
  postgresql  # the server the kv tests and bench/kv_backends.sh start (tests/support/postgres.sh)
  libssl-dev  # crypto.jwk_verify/jwk_sign: RSA and P-256 from OpenSSL's libcrypto
  curl python3 python3-requests python3-pytest
  chromium
  prometheus  # promtool checks /metrics' text format; the metrics test scrapes with a real prometheus
  lua-busted  # `depot test` runs the Lua specs (scripts/*/spec/) with busted
  clang libclang-rt-14-dev  # the fuzz harnesses (libFuzzer and clang's sanitizer runtimes)
  clang-format  # tests/clang_format.sh: every C++ file as .clang-format writes it
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

# `npm ci` in `dir` unless its node_modules already match its lockfile (the copied lockfile marks
# them current, so a rerun skips it).
npm_ci() {
  local dir="$1"
  if cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
    echo "setup: ${dir#"$repository/"}/node_modules current"
  else
    echo "setup: npm ci in ${dir#"$repository/"}"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
}
repository="$(cd "$(dirname "$0")" && pwd)"
# The node tests (tests/browser): playwright-core without a browser of its own (the tests drive
# Debian's chromium) and the OpenAPI validator.
npm_ci "$repository/tests/browser"
# What the API pages (<mount>/docs, <mount>/redoc) serve: Swagger UI's and ReDoc's bundles, next
# to the Lua module that serves them, so they ship with the scripts and work offline.
npm_ci "$repository/scripts/lib/openapi"
# The S3 server of the blob and S3-mode service tests (tests/support/s3_server.hpp): s3rver.
npm_ci "$repository/tests/s3"
