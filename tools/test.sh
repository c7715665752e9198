#!/bin/sh
# tools/test.sh: runs the busted suite through the real C module under
# each interpreter (Lua 5.4, LuaJIT, then 5.3, 5.2, 5.1), and ends with
# the line "N passed, N failed" (busted's own counts, added up).
#   SPECS=spec/02-update_members_spec.lua make test    runs some files only
#   LUAS="lua5.4" make test                     one interpreter only
LUAS=${LUAS:-"lua5.4 luajit lua5.3 lua5.2 lua5.1"}
SPECS=${SPECS:-spec}
mkdir -p .tmp
run=$(mktemp -d .tmp/test.XXXXXX)
passed=0; failed=0; status=0
for lua in $LUAS; do
  case $lua in luajit) build=build/luajit ;; *) build=build/${lua#lua} ;; esac
  echo "== busted under $lua ($build/cfiam.so)"
  out=$run/busted-$lua.out
  CFIAM_LUA=$lua CFIAM_BUILD=$build $lua /usr/bin/busted --cpath="./$build/?.so" \
    -o utfTerminal $SPECS 2>&1 | tee "$out"
  line=$(grep -a -E '^[0-9]+ success' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "busted under $lua did not finish" >&2
    failed=$((failed + 1)); status=1; continue
  fi
  set -- $(echo "$line" | sed -E 's/^([0-9]+) success(es)? \/ ([0-9]+) failures? \/ ([0-9]+) errors? .*/\1 \3 \4/')
  passed=$((passed + $1)); failed=$((failed + $2 + $3))
  [ "$2" = 0 ] && [ "$3" = 0 ] || status=1
done
rm -rf "$run"
echo "$passed passed, $failed failed"
exit $status
