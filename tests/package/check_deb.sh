#!/usr/bin/env bash
# The Debian package end to end, as the CI machine (root) runs it: builds it with CPack, checks
# what it holds, installs it with dpkg -i, runs the installed `depot check` on the installed
# config, runs the installed services' specs with the installed `depot test` (when lua-busted is
# installed), serves /hello as the package's user `depot` for a moment, verifies the systemd unit,
# and removes the package again (also when a step fails).
#   tests/package/check_deb.sh [BUILD_DIR]     (default build-package)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-package}
[ "$(id -u)" = 0 ] || { echo "check_deb.sh: installs a package, run it as root" >&2; exit 2; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=OFF \
  ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} >/dev/null
cmake --build "$build" -j2 --target depot
rm -f "$build"/depot_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
version=$(sed -n 's/^project(depot VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb="$build/depot_${version}_amd64.deb"
[ -f "$deb" ] || { echo "check_deb.sh: no $deb" >&2; ls "$build"/*.deb >&2 || true; exit 1; }

contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/depot ./usr/share/depot/scripts/file_cache/init.lua ./usr/share/depot/scripts/users/init.lua \
            ./usr/share/depot/scripts/users/spec/users_spec.lua ./usr/share/depot/tests/stubs/kbase_auth/init.lua \
            ./usr/share/doc/depot/README.md ./usr/share/doc/depot/lua-api.md ./etc/depot/depot.json \
            ./lib/systemd/system/depot.service; do
  grep -q " $path\$" <<<"$contents" || { echo "check_deb.sh: $path is not in the package" >&2; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q libluajit || { echo "check_deb.sh: Depends lacks the libraries" >&2; exit 1; }
dpkg-deb -f "$deb" Recommends | grep -q lua-busted || { echo "check_deb.sh: Recommends lacks lua-busted" >&2; exit 1; }
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/depot/depot.json ]

had_user=$(getent passwd depot >/dev/null && echo yes || echo no)
scratch=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  dpkg --purge depot >/dev/null 2>&1 || true
  [ "$had_user" = no ] && deluser --system depot >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

dpkg -i "$deb"
/usr/bin/depot version
/usr/bin/depot check --config /etc/depot/depot.json
if [ -f /usr/share/lua/5.1/busted/runner.lua ]; then
  # From the scratch dir: nothing of the checkout (its config, its scripts) is in reach.
  (cd "$scratch" && /usr/bin/depot test --scripts /usr/share/depot/scripts -o TAP)
fi
getent passwd depot >/dev/null

# The installed server, as its user, on the installed scripts and config (a scratch data dir).
chown depot: "$scratch"
runuser -u depot -- /usr/bin/depot serve --config /etc/depot/depot.json --host 127.0.0.1 --port 0 \
  --data-dir "$scratch/data" --log-format json 2>"$scratch/log" &
server=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$scratch/log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$scratch/log" >&2; exit 1; }
[ "$(curl -s "http://127.0.0.1:$port/hello")" = hello ]
kill "$server"
wait "$server" || true
server=

unit=/lib/systemd/system/depot.service
for setting in User=depot ProtectSystem=strict StateDirectory=depot NoNewPrivileges=true; do
  grep -qx "$setting" "$unit" || { echo "check_deb.sh: $unit lacks $setting" >&2; exit 1; }
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit"
fi
dpkg -r depot >/dev/null
[ ! -e /usr/bin/depot ]
echo "check_deb.sh: $deb builds, installs, checks, serves and removes cleanly"
