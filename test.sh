#!/usr/bin/env bash
# Runs every test: installs dependencies, builds, and runs the Catch2 unit and end-to-end tests
# (and the embedding example) through CTest. Extra arguments go to ctest (e.g. -R json).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDEPOT_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 300 -j"$(nproc)" "$@"
