#!/bin/sh
# tools/test-asan.sh (make test-asan): the busted suite under Lua 5.4 with the
# C module built with AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Built by gcc into build/asan-5.4/ (its own dir; the normal build is left
# alone): cfiam.so and a small Lua 5.4 interpreter, tools/asan-lua.c, linked
# with the sanitizers. The interpreter carries the ASan runtime itself, so
# nothing is preloaded (an LD_PRELOAD would reach every child process: sh,
# mktemp, the emulator, node). Child interpreters the specs start
# (CFIAM_LUA) are the same program, so they are checked too.
# Fails on any report: ASan/LSan reports of the busted process go to files
# under .tmp/asan/ (log_path); UBSan reports (and those of child processes,
# whose environment the specs reset) go to stderr and are found in the
# output. Leak checking is on: the interpreter closes the Lua state at the
# end, so what is still allocated then is a leak.
#   SPECS=spec/50-faults_spec.lua make test-asan   some files only
#   ASAN_CC=clang make test-asan                   clang instead of gcc
# Ends with the line "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 1
SPECS=${SPECS:-spec}
CC=${ASAN_CC:-gcc}
case $CC in gcc) BUILD=build/asan-5.4 ;; *) BUILD=build/asan-$(basename "$CC")-5.4 ;; esac
SAN='-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1'
here=$(pwd)

make --no-print-directory BUILD=$BUILD LUA_VERSION=5.4 CC="$CC" \
  XCFLAGS="$SAN" LIBFLAG="-shared $SAN" $BUILD/cfiam.so &&
$CC $SAN -I/usr/include/lua5.4 -o $BUILD/lua tools/asan-lua.c -llua5.4 &&
# the OpenResty spec's nginx loads the (uninstrumented) LuaJIT build
make --no-print-directory build/luajit/cfiam.so || {
  echo "test-asan: build failed" >&2; echo "0 passed, 1 failed"; exit 1; }

logs=.tmp/asan
rm -rf $logs; mkdir -p $logs
out=$(mktemp .tmp/busted-asan.XXXXXX)
ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=16:log_path=$here/$logs/asan:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1" \
LSAN_OPTIONS="suppressions=$here/tools/lsan.supp:print_suppressions=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
CFIAM_ASAN_QUARANTINE_KB=16384 CFIAM_LUA=$here/$BUILD/lua CFIAM_BUILD=$BUILD \
  $BUILD/lua /usr/bin/busted --cpath="./$BUILD/?.so" -o utfTerminal $SPECS 2>&1 | tee "$out"

passed=0; failed=0; status=0
line=$(grep -a -E '^[0-9]+ success' "$out" | tail -n 1)
if [ -z "$line" ]; then
  echo "busted under ASan did not finish" >&2
  failed=1; status=1
else
  set -- $(echo "$line" | sed -E 's/^([0-9]+) success(es)? \/ ([0-9]+) failures? \/ ([0-9]+) errors? .*/\1 \3 \4/')
  passed=$1; failed=$(($2 + $3))
  [ "$failed" = 0 ] || status=1
fi
reports=$(ls $logs | wc -l)
inline=$(grep -a -c -E 'runtime error:|ERROR: (Address|Leak)Sanitizer|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer' "$out")
if [ "$reports" != 0 ] || [ "$inline" != 0 ]; then
  echo "== sanitizer reports: $reports in $logs/, $inline in the output" >&2
  for f in $logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; head -n 60 "$f" >&2; }; done
  grep -a -n -A8 -E 'runtime error:|ERROR: (Address|Leak)Sanitizer' "$out" | head -n 80 >&2
  failed=$((failed + reports + inline)); status=1
fi
rm -f "$out"
echo "$passed passed, $failed failed"
exit $status
