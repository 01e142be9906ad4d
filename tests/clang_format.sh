#!/usr/bin/env bash
# Every C++ file in the repository is as clang-format (.clang-format at the root) writes it, so a
# diff shows behaviour, never layout. Fails naming the files; `clang-format -i FILE` fixes one.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc')
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/depot-clang-format.$$; then
  grep -o '^[^:]*:' /tmp/depot-clang-format.$$ | sort -u | sed 's/:$/ is not clang-formatted/'
  rm -f /tmp/depot-clang-format.$$
  exit 1
fi
rm -f /tmp/depot-clang-format.$$
