#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a running server with the default config:
# installs dependencies (setup.sh), builds, and runs `depot serve` (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target depot
exec ./build/depot serve "$@"
