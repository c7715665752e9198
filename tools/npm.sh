#!/bin/sh
# tools/npm.sh: installs the npm packages the conformance suites need
# (spec/40-prism_spec.lua, spec/41-sdk_parity_spec.lua) at pinned versions
# into vendor/npm (git-ignored), with npm's cache in .npm/ (git-ignored) so
# that a second install does not download again. Does nothing when both
# packages are already installed at the pinned versions.
#   sh tools/npm.sh            install (or check) and print the prefix
#   NPM=/path/to/npm sh tools/npm.sh
# Non-interactive (CI=true, no stdin needed). Exit status 0 on success.
set -e
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# Same Prism as cloudflare-typescript's scripts/mock, and that SDK's
# release whose behaviour spec/41 compares with.
PRISM_PKG=@stainless-api/prism-cli
PRISM_VERSION=5.15.0
SDK_PKG=cloudflare
SDK_VERSION=7.3.0

PREFIX=$ROOT/vendor/npm
CACHE=$ROOT/.npm
NPM=${NPM:-npm}

# installed_version PKG: the version in PREFIX's node_modules, or nothing.
installed_version() {
  f=$PREFIX/node_modules/$1/package.json
  [ -f "$f" ] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -n 1
}

if [ "$(installed_version $PRISM_PKG)" = "$PRISM_VERSION" ] &&
   [ "$(installed_version $SDK_PKG)" = "$SDK_VERSION" ] &&
   [ -x "$PREFIX/node_modules/.bin/prism" ]; then
  echo "$PREFIX"
  exit 0
fi

if ! command -v "$NPM" >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "tools/npm.sh: node and npm are needed for the conformance suites" \
       "(Debian: apt-get install nodejs npm, or run make deps as root)" >&2
  exit 1
fi

mkdir -p "$PREFIX" "$CACHE"
# A package.json of our own keeps npm from walking up to another project.
[ -f "$PREFIX/package.json" ] ||
  printf '{ "name": "cfiam-conformance-tools", "private": true }\n' > "$PREFIX/package.json"

# --prefer-offline: use the cache when it has the tarballs; the pinned
# versions never change, so this is safe and avoids a download.
install() {
  CI=true npm_config_update_notifier=false "$NPM" install \
    --prefix "$PREFIX" --cache "$CACHE" --prefer-offline \
    --no-audit --no-fund --save-exact --loglevel=error \
    "$PRISM_PKG@$PRISM_VERSION" "$SDK_PKG@$SDK_VERSION" </dev/null >&2
}
install
# Once, npm reported success from a warm cache yet left a scoped package
# out; a second pass (from the cache, no download) completes the tree.
if [ "$(installed_version $PRISM_PKG)" != "$PRISM_VERSION" ] ||
   [ "$(installed_version $SDK_PKG)" != "$SDK_VERSION" ]; then
  install
fi

if [ "$(installed_version $PRISM_PKG)" != "$PRISM_VERSION" ] ||
   [ "$(installed_version $SDK_PKG)" != "$SDK_VERSION" ]; then
  echo "tools/npm.sh: npm install did not leave $PRISM_PKG@$PRISM_VERSION" \
       "and $SDK_PKG@$SDK_VERSION in $PREFIX" >&2
  exit 1
fi
echo "$PREFIX"
