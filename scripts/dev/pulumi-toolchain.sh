#!/usr/bin/env bash
# Builds the real Pulumi toolchain from the Go module proxy, once per version, and caches it
# outside the repository:
#
#   ${GREENLIGHT_CACHE:-~/.cache/greenlight}/toolchain/pulumi-<version>/bin/
#     pulumi                          the CLI and engine (scripts/dev/pulumi-toolchain/go.mod)
#     status.txt                      what could and could not be built here, and why
#
# Usage: scripts/dev/pulumi-toolchain.sh [--print-bin]
#   Progress goes to stderr; with --print-bin the bin directory is the only line on stdout.
#
# The CLI's module (pkg/go.mod) has replace directives, so `go install ...@version` refuses
# it; the wrapper module in pulumi-toolchain/ requires it instead (a dependency's replace
# directives are ignored), with a committed go.sum. Two more binaries would complete the
# toolchain, and each is tried on every run, because the proxy may serve them one day:
#   - pulumi-language-nodejs (its own untagged module): without it, the rehearsal runs the
#     program through the Automation API as an inline program, which uses the same CLI and
#     engine (`pulumi up --client`);
#   - pulumi-resource-command at the version package-lock.json pins: without it, the
#     rehearsal serves the rig's stand-in of pulumi-command (test/rig/standins/).
# Either one's refusal is printed with the exact command and the proxy's answer.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
module="$here/pulumi-toolchain"
print_bin=0
[ "${1:-}" = "--print-bin" ] && print_bin=1

say() { printf 'pulumi-toolchain: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || {
  say "needs Go (1.26 or newer) on PATH to build the Pulumi CLI from the Go module proxy"
  exit 1
}

version=$(sed -n 's|^require github.com/pulumi/pulumi/pkg/v3 \(v[0-9.]*\)$|\1|p' "$module/go.mod")
[ -n "$version" ] || {
  say "cannot read the pinned github.com/pulumi/pulumi/pkg/v3 version from $module/go.mod"
  exit 1
}
# The command provider's version is the one the program's SDK was locked at.
command_version=$(sed -n '/"node_modules\/@pulumi\/command": {/{n;s/.*"version": "\([^"]*\)".*/\1/p;q}' "$repo/package-lock.json")
# pulumi-command's provider module is untagged: v1.2.1 is commit 7f3eb6f3b77c of 2026-03-03.
declare -A command_pseudo=(["1.2.1"]="v0.0.0-20260303235922-7f3eb6f3b77c")

cache="${GREENLIGHT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/greenlight}/toolchain"
dir="$cache/pulumi-$version"
bin="$dir/bin"
mkdir -p "$bin"
exec 9>"$dir/.lock"
flock 9

export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
if [ -x "$bin/pulumi" ] && [ "$("$bin/pulumi" version 2>/dev/null)" = "$version" ]; then
  say "reusing pulumi $version from $bin"
else
  say "building pulumi $version (CLI and engine) from the Go module proxy into $bin"
  say "  a first build downloads ~1.7 GB of modules and compiles ~1,200 packages: 5-25 minutes on 2 cores"
  started=$(date +%s)
  # `go build -v` names each package as it compiles it: show a count now and then.
  if ! (cd "$module" && go build -v -trimpath -o "$bin/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) 2>&1 |
    awk '
      /^go: downloading/ { d++; if (d % 100 == 0) printf "pulumi-toolchain:   %d modules downloaded\n", d > "/dev/stderr"; next }
      /^[a-zA-Z0-9._~\/-]+$/ { n++; if (n % 150 == 0) printf "pulumi-toolchain:   %d packages compiled\n", n > "/dev/stderr"; next }
      { print > "/dev/stderr" }'; then
    say "building the Pulumi CLI failed (see above); the command was: (cd $module && go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)"
    exit 1
  fi
  mv "$bin/pulumi.tmp" "$bin/pulumi"
  say "built pulumi $("$bin/pulumi" version) in $(($(date +%s) - started))s"
fi

# What else the toolchain would have, tried against the proxy each time (a refusal is quick).
status="$dir/status.txt"
: >"$status.tmp"
try_module() { # name, module@version
  local name=$1 mv=$2 out
  local cmd="GOFLAGS=-mod=mod go mod download -json $mv"
  local tmp
  tmp=$(mktemp -d)
  if out=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$mv" 2>&1); then
    rm -rf "$tmp"
    printf '%s\tavailable\t%s\n' "$name" "$mv" >>"$status.tmp"
    say "$name: $mv is served by the Go module proxy (not built yet: see README)"
  else
    rm -rf "$tmp"
    local err
    # go mod download -json puts the proxy's answer in "Error"; anything else is printed whole.
    err=$(printf '%s' "$out" | sed -n 's/^[[:space:]]*"Error": "\(.*\)"$/\1/p' | sed 's/\\n\\t/ /g; s/\\n/ /g')
    [ -n "$err" ] || err=$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-400)
    printf '%s\tnot-buildable\t%s\t%s\n' "$name" "$cmd" "$err" >>"$status.tmp"
    say "$name cannot be built here: \`$cmd\` answered: $err"
  fi
}
try_module pulumi-language-nodejs "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3@$version"
if [ -n "${command_pseudo[$command_version]:-}" ]; then
  try_module "pulumi-resource-command $command_version" \
    "github.com/pulumi/pulumi-command/provider@${command_pseudo[$command_version]}"
else
  printf 'pulumi-resource-command %s\tnot-buildable\t(no commit known for this version)\n' "$command_version" >>"$status.tmp"
  say "pulumi-resource-command $command_version: no commit pinned in $0"
fi
mv "$status.tmp" "$status"

[ "$print_bin" -eq 1 ] && printf '%s\n' "$bin"
exit 0
