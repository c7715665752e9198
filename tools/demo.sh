#!/bin/sh
# tools/demo.sh (make demo): starts the API emulator with its demo account,
# replaces the Engineering group's members with examples/replace_members.lua
# through the C module, prints the result, and stops the emulator.
set -eu
LUA=${LUA:-lua5.4}
BUILD=${BUILD:-build/5.4}
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

# The emulator prints one JSON line when it listens; read it from a FIFO.
mkfifo "$tmp/ready"
"$LUA" emulator/main.lua --demo --no-stdin >"$tmp/ready" 2>"$tmp/emulator.log" &
pid=$!
read -r line <"$tmp/ready"
http=$(echo "$line" | sed -E 's/.*"http":"([^"]+)".*/\1/')

account=0123456789abcdef0123456789abcdef
engineering=e0000000000000000000000000000001
echo "emulator: $http (demo account $account)"
echo "replacing the Engineering group with alice, carol, grace (pending) and heidi:"
echo
CLOUDFLARE_BASE_URL="$http/client/v4" CLOUDFLARE_API_TOKEN=demo-token \
LUA_PATH="./lua/?.lua;;" LUA_CPATH="./$BUILD/?.so;;" \
  "$LUA" examples/replace_members.lua "$account" "$engineering" \
    d0000000000000000000000000000001 d0000000000000000000000000000003 \
    d0000000000000000000000000000007 d0000000000000000000000000000008
