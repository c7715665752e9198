#!/bin/sh
# bench/run.sh: what `make bench` runs (after building build/5.4/cfiam.so and
# build/luajit/cfiam.so). Starts nginx with canned answers over HTTP and
# HTTPS (a test CA made here), runs every workload for every contender,
# round by round (contenders interleaved, their order rotated each round),
# and writes the medians and ratios to bench/RESULTS.md (a run of a subset
# of contenders or workloads writes bench/out/RESULTS.md instead, so that
# the committed report stays whole).
#
#   ROUNDS=9          rounds (the medians are over these)
#   ITERATIONS=5000   calls per measurement in workload a for the floor and
#                     cfiam; the SDK and LuaSocket make ITERATIONS/100 (they
#                     are 30-700 times slower)
#   LISTINGS=5        timed listings per measurement in workload c (after
#                     one warm-up listing); LuaSocket makes one
#   CONTENDERS="floor cfiam-5.4 cfiam-luajit cfiam-5.4-request sdk luasocket"
#                     a subset (cfiam-5.4-request: workload c only, the
#                     paging through client:request instead of list_members)
#   WORKLOADS="a b b-seq c"
#                     a subset (b-seq: workload b with sequential ids,
#                     string.format("%032x", i), which must cost what the
#                     random ids of b cost)
# Scratch goes to bench/out/ (git-ignored). Takes about 3 minutes.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out
ROUNDS=${ROUNDS:-9}
ITERATIONS=${ITERATIONS:-5000}
LISTINGS=${LISTINGS:-5}
SLOW_ITERATIONS=${SLOW_ITERATIONS:-$(( ITERATIONS / 100 > 10 ? ITERATIONS / 100 : 10 ))}
ALL_CONTENDERS="floor cfiam-5.4 cfiam-luajit cfiam-5.4-request sdk luasocket"
CONTENDERS=${CONTENDERS:-$ALL_CONTENDERS}
ALL_WORKLOADS="a b b-seq c"
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
if [ "$CONTENDERS" = "$ALL_CONTENDERS" ] && [ "$WORKLOADS" = "$ALL_WORKLOADS" ]; then
  REPORT=bench/RESULTS.md
else
  REPORT=bench/out/RESULTS.md
fi
CC=${CC:-cc}

# Fixed ids: the account and one group per workload.
ACCOUNT=023e105f4ecef8ad9ca31a8372d0c353
G_SMALL=0a1b2c3d4e5f60718293a4b5c6d7e8f9
G_LARGE=1b2c3d4e5f60718293a4b5c6d7e8f90a
G_LIST=2c3d4e5f60718293a4b5c6d7e8f90a1b
G_SEQ=3d4e5f60718293a4b5c6d7e8f90a1b2c
SMALL_ID=4f5f0c14a2a41d5063dd301b2f829f04
export BENCH_ACCOUNT=$ACCOUNT BENCH_G_SMALL=$G_SMALL BENCH_G_LARGE=$G_LARGE \
       BENCH_G_LIST=$G_LIST BENCH_SMALL_ID=$SMALL_ID BENCH_OUT=$OUT
# The SDK and cfiam read these: the benchmark sets its own.
unset CLOUDFLARE_API_TOKEN CLOUDFLARE_EMAIL CLOUDFLARE_API_KEY CLOUDFLARE_BASE_URL || true

for f in build/5.4/cfiam.so build/luajit/cfiam.so; do
  [ -f "$f" ] || { echo "bench: $f is missing (run make bench)" >&2; exit 1; }
done

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

echo "bench: preparing canned answers"
lua5.4 bench/gen.lua "$OUT" "$ACCOUNT" "$G_SMALL" "$G_LARGE" "$G_LIST" "$G_SEQ"

echo "bench: making a test CA and a server certificate"
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

echo "bench: building the floor (bench/floor.c)"
$CC -O2 -Wall -o "$OUT/floor" bench/floor.c $(pkg-config --cflags lua5.4 libcurl) \
  $(pkg-config --libs lua5.4 libcurl) -lm

SDK_PREFIX=
case " $CONTENDERS " in
  *" sdk "*)
    echo "bench: installing the official SDK (tools/npm.sh, cached in .npm/)"
    if [ -f tools/npm.sh ]; then
      SDK_PREFIX=$(sh tools/npm.sh | tail -n 1)
    else # the same pinned package into the same git-ignored place
      SDK_PREFIX=$ROOT/vendor/npm
      mkdir -p "$SDK_PREFIX" "$ROOT/.npm"
      CI=true npm install --prefix "$SDK_PREFIX" --cache "$ROOT/.npm" --prefer-offline \
        --no-audit --no-fund --save-exact --loglevel=error cloudflare@7.3.0 </dev/null >&2
    fi
    ;;
esac
export BENCH_SDK_PREFIX=$SDK_PREFIX

# Two free ports: bind port 0 and read what the kernel gave.
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
  -e "s|@USER@|$NGINX_USER|g" \
  bench/nginx.conf.in > "$OUT/nginx/nginx.conf"
nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" &
NGINX_PID=$!
HTTP_URL=http://127.0.0.1:$HTTP_PORT/client/v4
HTTPS_URL=https://127.0.0.1:$HTTPS_PORT/client/v4
# Ready when it answers (bounded: 100 tries of 0.1 s).
i=0
until curl -s -o /dev/null --cacert "$CA" "$HTTPS_URL/accounts/$ACCOUNT/iam/user_groups/$G_LIST/members?page=1"; do
  i=$((i + 1))
  if [ $i -ge 100 ] || ! kill -0 "$NGINX_PID" 2>/dev/null; then
    echo "bench: nginx did not start" >&2; cat "$OUT/nginx/error.log" >&2; exit 1
  fi
  sleep 0.1
done
echo "bench: nginx on $HTTP_URL and $HTTPS_URL"

LOG=$OUT/nginx/access.log
RESULTS=$OUT/results.tsv
: > "$RESULTS"

# run_one ROUND WORKLOAD CONTENDER: one measurement, appended to $RESULTS
# as "workload contender round key value" lines. Workloads: a-http,
# a-https, b and b-seq (HTTP), c (HTTPS; also counts the TLS connections it
# made).
run_one() {
  round=$1 wl=$2 who=$3
  case $wl in
    a-http)  base=$HTTP_URL  ca=- ;;
    a-https) base=$HTTPS_URL ca=$CA ;;
    b|b-seq) base=$HTTP_URL  ca=- ;;
    c)       base=$HTTPS_URL ca=$CA ;;
  esac
  # which ids workload b sends (every contender reads these two)
  case $wl in
    b-seq) BENCH_B_IDS=ids_seq.txt BENCH_B_GROUP=$G_SEQ body=body_seq.json ;;
    *)     BENCH_B_IDS=ids_large.txt BENCH_B_GROUP=$G_LARGE body=body_large.json ;;
  esac
  export BENCH_B_IDS BENCH_B_GROUP
  w=${wl%%-*}
  members=$base/accounts/$ACCOUNT/iam/user_groups
  case $w in
    a) arg=$ITERATIONS; slow=$SLOW_ITERATIONS; url=$members/$G_SMALL/members ;;
    b) arg=1; slow=1; url=$members/$BENCH_B_GROUP/members ;;
    c) arg=$LISTINGS; slow=$LISTINGS; url=$members/$G_LIST/members ;;
  esac
  before=$(wc -l < "$LOG")
  case $who in
    floor)
      [ "$w" = b ] && arg=$OUT/$body
      line=$("$OUT/floor" "$w" "$url" "$ca" "$arg") ;;
    cfiam-5.4)
      line=$(LUA_CPATH="$ROOT/build/5.4/?.so;;" LUA_PATH="$ROOT/lua/?.lua;;" \
             lua5.4 bench/cfiam_bench.lua "$w" "$base" "$ca" "$arg") ;;
    cfiam-5.4-request)
      line=$(BENCH_PAGING=request LUA_CPATH="$ROOT/build/5.4/?.so;;" LUA_PATH="$ROOT/lua/?.lua;;" \
             lua5.4 bench/cfiam_bench.lua "$w" "$base" "$ca" "$arg") ;;
    cfiam-luajit)
      line=$(LUA_CPATH="$ROOT/build/luajit/?.so;;" LUA_PATH="$ROOT/lua/?.lua;;" \
             luajit bench/cfiam_bench.lua "$w" "$base" "$ca" "$arg") ;;
    sdk)
      line=$(NODE_EXTRA_CA_CERTS=$CA node bench/sdk_bench.js "$w" "$base" "$ca" "$slow") ;;
    luasocket)
      [ "$w" = c ] && slow=1 # 41 TLS handshakes a listing: one is enough
      line=$(lua5.4 bench/luasocket_bench.lua "$w" "$base" "$ca" "$slow") ;;
  esac
  if [ "$w" = c ]; then
    # New log lines of this run: distinct connections, full handshakes.
    # Listings = the timed one(s) plus the warm-up.
    line="$line $(tail -n +$((before + 1)) "$LOG" | awk -v l=$((slow + 1)) '
      $1 == "https" { c[$2] = 1; if ($4 == ".") f[$2] = 1; r++ }
      END { printf "tls_connections %.1f full_handshakes %.1f requests %.1f",
            length(c) / l, length(f) / l, r / l }')"
  fi
  echo "$line" | awk -v p="$wl $who $round" '{ for (i = 1; i < NF; i += 2) print p, $i, $(i + 1) }' >> "$RESULTS"
  printf '  %-8s %-13s %s\n' "$wl" "$who" "$line"
}

start=$(date +%s)
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "bench: round $r of $ROUNDS"
  # Rotate the contenders' order each round so none always runs first.
  order=$(echo $CONTENDERS | awk -v r=$r '{ for (i = 0; i < NF; i++) printf "%s ", $(((i + r - 1) % NF) + 1) }')
  for w in $WORKLOADS; do
    case $w in a) wls="a-http a-https" ;; *) wls=$w ;; esac
    for wl in $wls; do
      for who in $order; do
        [ "$who" = cfiam-5.4-request ] && [ "$w" != c ] && continue
        run_one "$r" "$wl" "$who"
      done
    done
  done
  r=$((r + 1))
done
echo "bench: measured in $(( $(date +%s) - start )) s"

# The machine, for the report.
{
  echo "cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) ($(nproc) cores)"
  echo "kernel $(uname -sr)"
  echo "lua $(lua5.4 -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo "luajit $(luajit -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  echo "libcurl $(pkg-config --modversion libcurl) ($(curl --version | head -n 1 | grep -o 'OpenSSL/[^ ]*' || true))"
  echo "cjson lua-cjson $(lua5.4 -e 'print(require("cjson")._VERSION)')"
  echo "luasocket $(lua5.4 -e 'print(require("socket")._VERSION)'), LuaSec $(lua5.4 -e 'print(require("ssl")._VERSION)')"
  echo "node Node.js $(node --version)$( [ -n "$SDK_PREFIX" ] && echo ", cloudflare@$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$SDK_PREFIX/node_modules/cloudflare/package.json" | head -n 1)")"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*: //')"
  echo "list_members $(grep -c list_members lua/cfiam/members.lua 2>/dev/null || echo 0)"
  echo "rounds $ROUNDS"
  echo "iterations $ITERATIONS"
  echo "slow_iterations $SLOW_ITERATIONS"
  echo "listings $LISTINGS"
  echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
} > "$OUT/machine.txt"

# keep the section bench/many.sh writes (make bench-many) in the full report
if [ "$REPORT" = bench/RESULTS.md ]; then
  sed -n '/^## Many requests at once/,$p' bench/RESULTS.md > "$OUT/many.md" 2>/dev/null || true
else
  : > "$OUT/many.md"
fi
{
  lua5.4 bench/report.lua "$RESULTS" "$OUT/machine.txt"
  if [ -s "$OUT/many.md" ]; then echo; cat "$OUT/many.md"; fi
} > "$OUT/report.tmp"
mv "$OUT/report.tmp" "$REPORT"
echo
cat "$REPORT"
echo "bench: report written to $REPORT"
