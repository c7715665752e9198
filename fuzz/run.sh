#!/bin/sh
# fuzz/run.sh (make fuzz): builds the libFuzzer harnesses with clang
# (-fsanitize=fuzzer,address,undefined) into build/fuzz/, replays each
# committed corpus (fuzz/corpus/<harness>/: the seeds and every crash ever
# found, kept as regression inputs), then fuzzes each harness for
# FUZZ_SECONDS (default 180; CI runs FUZZ_SECONDS=10 as a smoke pass).
# New interesting inputs go to .tmp/fuzz/<harness>/ (not committed); a crash
# is written to .tmp/fuzz/crash-<harness>-* and fails the run: copy it into
# fuzz/corpus/<harness>/regress-<what>.* so that it is replayed from then on.
#   FUZZ_SECONDS=600 make fuzz            longer runs
#   FUZZ_HARNESSES="response" make fuzz   some harnesses only
# Ends with "N passed, N failed" (one per replay and one per fuzzing run).
set -u
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${FUZZ_SECONDS:-180}
HARNESSES=${FUZZ_HARNESSES:-"response headers validate"}
CC=${FUZZ_CC:-clang}
OUT=build/fuzz
WORK=.tmp/fuzz
LUA_INCDIR=${LUA_INCDIR:-/usr/include/lua5.4}
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# The C of cfiam that reads untrusted bytes (not client/request/transport:
# they need a live libcurl transfer; the specs cover those).
SRC="csrc/json.c csrc/response.c csrc/error.c csrc/retry.c csrc/headers.c csrc/buf.c csrc/validate.c csrc/idhash.c csrc/ratelimit.c"
mkdir -p $OUT $WORK
passed=0; failed=0
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for h in $HARNESSES; do
  echo "== fuzz/$h: build"
  if ! $CC -g -O1 $SAN -I"$LUA_INCDIR" -o $OUT/$h fuzz/$h.c $SRC -llua5.4 -lcurl -lm; then
    failed=$((failed + 1)); continue
  fi
  echo "== fuzz/$h: replay fuzz/corpus/$h ($(ls fuzz/corpus/$h | wc -l) inputs)"
  if $OUT/$h -runs=0 -artifact_prefix=$WORK/crash-$h- fuzz/corpus/$h > $WORK/$h-replay.log 2>&1; then
    passed=$((passed + 1))
  else
    tail -n 40 $WORK/$h-replay.log; failed=$((failed + 1))
    continue # a known crash: fuzzing would only find it again
  fi
  echo "== fuzz/$h: fuzz for ${SECONDS_EACH}s"
  mkdir -p $WORK/$h
  if $OUT/$h -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$WORK/crash-$h- \
      $WORK/$h fuzz/corpus/$h > $WORK/$h.log 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' $WORK/$h.log | tail -n 2
    passed=$((passed + 1))
  else
    tail -n 60 $WORK/$h.log
    echo "fuzz/$h: crash, input in $(ls $WORK/crash-$h-* 2>/dev/null | tail -n 1)" >&2
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
