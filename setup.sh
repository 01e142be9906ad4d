#!/usr/bin/env bash
# Installs everything Depot needs to build, test and benchmark, from Debian packages only.
# Idempotent: packages already present are skipped. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libpistache-dev libluajit2-5.1-dev liblmdb-dev libsodium-dev nlohmann-json3-dev
  libcurl4-openssl-dev libhttp-parser-dev catch2
  curl python3 python3-requests python3-pytest
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(wrk nginx libnginx-mod-http-lua lua-resty-core lua-cjson)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
# policy-rc.d keeps Debian's nginx package from starting a system nginx on :80.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
