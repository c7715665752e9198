#!/bin/sh
# tools/deps.sh: installs the Debian packages that building, testing, the
# demo and the benchmarks need, when some are missing. As root it runs
# apt-get; otherwise it prints the command to run.
set -e
PKGS="gcc make pkg-config libcurl4-openssl-dev ca-certificates openssl
lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev
lua-cjson lua-yaml lua-argparse lua-busted lua-socket lua-sec lua-check luarocks
nginx-light libnginx-mod-http-lua
clang libclang-rt-14-dev valgrind"
# Node.js (Prism, the official SDK): the machine's own node/npm when present
# (Debian's npm package conflicts with a node that bundles npm).
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

# --list: print the package list (for .ci/run) and stop.
if [ "${1:-}" = "--list" ]; then echo $PKGS; exit 0; fi

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "cfiam: installing missing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "cfiam: missing Debian packages:$missing" >&2
  echo "install them with: sudo apt-get install$missing" >&2
  exit 1
fi
