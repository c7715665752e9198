#!/bin/sh
# bench/many.sh (make bench-many): many requests at once, against a canned
# API with 50 ms of latency per request (ngx.sleep: answers overlap).
#   d  list_members of a 20,000-member group (40 pages of 500): page after
#      page, and concurrency = 8
#   e  100 groups, each its first member page then a PUT: cfiam in a plain
#      loop and through request_many at concurrency 16; the official SDK in
#      a plain loop and with Promise.all in batches of 16 (HTTP)
#   f  e over HTTPS: cfiam negotiates HTTP/2 (one connection); TLS
#      handshakes per run counted in nginx's log
#   ROUNDS=3 runs per figure (the median is printed)
# Prints a table, and the floors: d RTT x (1 + ceil(39 / 8)), e and f
# 2 x RTT x ceil(100 / 16), with RTT = 50 ms.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out/many
ROUNDS=${ROUNDS:-3}
MODULES=${NGINX_MODULES:-/usr/lib/nginx/modules}
ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
G_SMALL=0a1b2c3d4e5f60718293a4b5c6d7e8f9
G_LARGE=1b2c3d4e5f60718293a4b5c6d7e8f90a
G_LIST=2c3d4e5f60718293a4b5c6d7e8f90a1b
SMALL_ID=4f5f0c14a2a41d5063dd301b2f829f04
export BENCH_ACCOUNT=$ACCOUNT BENCH_G_LIST=$G_LIST BENCH_SMALL_ID=$SMALL_ID
unset CLOUDFLARE_API_TOKEN CLOUDFLARE_EMAIL CLOUDFLARE_API_KEY CLOUDFLARE_BASE_URL || true

NGINX_PID=
cleanup() {
  if [ -n "$NGINX_PID" ]; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM
umask 022
rm -rf "$OUT"
mkdir -p "$OUT/nginx" "$OUT/tls"

echo "many: canned answers"
lua5.4 bench/gen.lua "$OUT" "$ACCOUNT" "$G_SMALL" "$G_LARGE" "$G_LIST"
mkdir -p "$OUT/www/_get/small"
cp "$OUT/www/_put/$G_SMALL.json" "$OUT/www/_put/small.json"
sed 's/}$/,"result_info":{"page":1,"per_page":50,"count":1,"total_count":1}}/' \
  "$OUT/www/_put/$G_SMALL.json" > "$OUT/www/_get/small/1.json"

(
  cd "$OUT/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 2 -subj "/CN=cfiam bench CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > ext.cnf
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days 2 -extfile ext.cnf -out server.crt 2>/dev/null
)
CA=$OUT/tls/ca.crt

SDK_PREFIX=$(sh tools/npm.sh | tail -n 1)
export BENCH_SDK_PREFIX=$SDK_PREFIX

PORTS=$(lua5.4 -e '
  local socket = require "socket"
  local a, b = assert(socket.bind("127.0.0.1", 0)), assert(socket.bind("127.0.0.1", 0))
  print(select(2, a:getsockname()) .. " " .. select(2, b:getsockname()))
  a:close() b:close()')
HTTP_PORT=${PORTS% *}
HTTPS_PORT=${PORTS#* }
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user $(id -un) $(id -gn);"
sed -e "s|@OUT@|$OUT|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@HTTPS_PORT@|$HTTPS_PORT|g" \
  -e "s|@USER@|$NGINX_USER|g" -e "s|@MODULES@|$MODULES|g" -e "s|@G_LIST@|$G_LIST|g" \
  bench/nginx_many.conf.in > "$OUT/nginx/nginx.conf"
nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" &
NGINX_PID=$!
HTTP_URL=http://127.0.0.1:$HTTP_PORT/client/v4
HTTPS_URL=https://127.0.0.1:$HTTPS_PORT/client/v4
i=0
until curl -s -o /dev/null --cacert "$CA" "$HTTPS_URL/accounts/$ACCOUNT/iam/user_groups/$G_LIST/members?page=1"; do
  i=$((i + 1))
  if [ $i -ge 100 ] || ! kill -0 "$NGINX_PID" 2>/dev/null; then
    echo "many: nginx did not start" >&2; cat "$OUT/nginx/error.log" >&2; exit 1
  fi
  sleep 0.1
done
LOG=$OUT/nginx/access.log

cf() { # lua build workload base ca concurrency
  LUA_CPATH="$ROOT/$2/?.so;;" LUA_PATH="$ROOT/lua/?.lua;;" $1 bench/many_bench.lua "$3" "$4" "$5" "$6" "$ROUNDS"
}
# runs a command; prints its figure and, for HTTPS, the TLS handshakes and
# connections per run (warm-up included: ROUNDS + 1 runs)
measure() {
  label=$1; shift
  before=$(wc -l < "$LOG")
  ms=$("$@" | sed -n 's/^ms //p')
  extra=$(tail -n +$((before + 1)) "$LOG" | awk -v l=$((ROUNDS + 1)) '
    $1 == "https" { c[$2] = 1; if ($3 == ".") f[$2] = 1; p[$4] = 1 }
    END { if (length(c)) { s = ""; for (k in p) s = s k " ";
          printf "tls_connections %.1f full_handshakes %.1f %s", length(c) / l, length(f) / l, s } }')
  printf '%-44s %10s ms  %s\n' "$label" "$ms" "$extra"
  echo "$label|$ms|$extra" >> "$OUT/results.txt"
}

: > "$OUT/results.txt"
echo "many: d (RTT 50 ms; floor 50 x (1 + ceil(39 / 8)) = 300 ms)"
measure "d. list_members, page after page, Lua 5.4" cf lua5.4 build/5.4 d "$HTTP_URL" - 1
measure "d. list_members, concurrency 8, Lua 5.4" cf lua5.4 build/5.4 d "$HTTP_URL" - 8
measure "d. list_members, concurrency 8, LuaJIT" cf luajit build/luajit d "$HTTP_URL" - 8
echo "many: e (floor 2 x 50 x ceil(100 / 16) = 700 ms)"
measure "e. cfiam, plain loop, HTTP" cf lua5.4 build/5.4 e "$HTTP_URL" - 1
measure "e. cfiam request_many 16, HTTP" cf lua5.4 build/5.4 e "$HTTP_URL" - 16
measure "e. SDK, plain loop, HTTP" node bench/sdk_many.js loop "$HTTP_URL" "$ROUNDS"
measure "e. SDK, Promise.all x 16, HTTP" node bench/sdk_many.js all16 "$HTTP_URL" "$ROUNDS"
echo "many: f (e over HTTPS)"
measure "f. cfiam request_many 16, HTTPS" cf lua5.4 build/5.4 e "$HTTPS_URL" "$CA" 16
NODE_EXTRA_CA_CERTS=$CA measure "f. SDK, Promise.all x 16, HTTPS" node bench/sdk_many.js all16 "$HTTPS_URL" "$ROUNDS"

# The section "Many requests at once" of bench/RESULTS.md (replaced; make
# bench keeps it when it rewrites the rest).
{
  echo "## Many requests at once (make bench-many)"
  echo
  echo "Written by bench/many.sh on $(date -u '+%Y-%m-%d %H:%M') UTC: nginx answers every API request after 50 ms"
  echo "(ngx.sleep, so answers overlap as on the real API); medians of $ROUNDS runs, each on a fresh client after"
  echo "one warm-up run. Floors: d = 50 ms x (1 + ceil(39 / 8)) = 300 ms (page 1, then 39 pages 8 at a time);"
  echo "e, f = 2 x 50 ms x ceil(100 / 16) = 700 ms (the listing pages, then the PUTs, 16 at a time)."
  echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo
  echo "| workload | ms | ratio to floor | connections |"
  echo "|---|---:|---:|---|"
  awk -F'|' '{ floor = ($1 ~ /^d/) ? 300 : 700
               printf "| %s | %.0f | %.2fx | %s |\n", $1, $2, $2 / floor, $3 }' "$OUT/results.txt"
} > "$OUT/section.md"
awk '/^## Many requests at once/ { exit } { print }' bench/RESULTS.md > "$OUT/head.md"
cat "$OUT/head.md" "$OUT/section.md" > bench/RESULTS.md
cat "$OUT/section.md"
