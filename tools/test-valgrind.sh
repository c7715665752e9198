#!/bin/sh
# tools/test-valgrind.sh (make test-valgrind): tools/stress.lua, which runs
# every error path of the C module, under valgrind memcheck with the normal
# build (build/5.4/cfiam.so, -O2).
# Fails on any invalid read or write, use of uninitialised memory, bad free,
# or a definite or indirect leak. "Still reachable" (libcurl's and
# OpenSSL's global state, never freed by design) and "possibly lost" are
# not errors. tools/valgrind.supp holds the suppressions, each explained:
# only Lua, libcurl or OpenSSL code, never cfiam's.
# The emulator the script starts is a child process and is not traced.
#   STRESS_ROUNDS=10 make test-valgrind     more rounds (default 3)
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
make --no-print-directory LUA_VERSION=5.4 build/5.4/cfiam.so || {
  echo "0 passed, 1 failed"; exit 1; }
mkdir -p .tmp
log=.tmp/valgrind.log
STRESS_ROUNDS=${STRESS_ROUNDS:-3} CFIAM_BUILD=build/5.4 \
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --track-origins=yes --num-callers=30 --trace-children=no \
  --suppressions=tools/valgrind.supp --gen-suppressions=all \
  --log-file=$log lua5.4 tools/stress.lua
rc=$?
grep -E '^==[0-9]+== (ERROR SUMMARY|   definitely lost|   indirectly lost|   possibly lost|   still reachable|      suppressed)' $log
if [ "$rc" = 0 ]; then
  echo "1 passed, 0 failed"
  exit 0
fi
echo "== valgrind reported problems (exit $rc), see $log:" >&2
grep -E -A25 '^==[0-9]+== (Invalid|Conditional|Use of|Mismatched|Syscall|Source and|[0-9,]+ bytes in [0-9,]+ blocks are (definitely|indirectly))' $log | head -n 150 >&2
echo "0 passed, 1 failed"
exit 1
