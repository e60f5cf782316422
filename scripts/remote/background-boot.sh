#!/usr/bin/env bash
# greenlight background-boot: when supervisor starts (a host's boot, or supervisord started
# again), brings back the background processes this host ran, with the release they ran.
# The bootstrap installs this file as /srv/<app>/bin/background-boot and runs it as supervisor's
# <app>-background-boot (user deploy, autostart=true, autorestart=false, startsecs=0): once,
# each time supervisor starts. The worker and beat programs never start on their own
# (autostart=false), so that they never run a release the release graph did not give them.
#
# It reads the record workers.sh writes after each start that succeeded,
# /srv/<app>/background.json ({"slot":...,"release":...,"worker":true|false,"beat":true|false}),
# and starts what it names that is not running (`supervisorctl start`, which waits for RUNNING):
# the worker, and beat only where the record says so (the first host: one beat per environment).
# No record (none started yet, or stopped by workers-stop, a failed start or workers off):
# nothing starts. A record whose release is not the one /srv/<app>/background points at (no
# step leaves that, but a hand may): nothing starts, and it exits 1 (EXITED, not expected, in
# `supervisorctl status`). It takes the app's lock, so it waits for a step under way.
#
# usage: background-boot APP (its output is supervisor's log /var/log/<app>/background-boot.log)
set -Eeuo pipefail
umask 027
export LC_ALL=C.UTF-8
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s greenlight background-boot: %s\n' "$(date -u +%H:%M:%S.%3N)" "$*"; }
die() {
  log "error: $*"
  exit 1
}

app=${1:-}
[[ $app =~ ^[a-z][a-z0-9]{1,15}$ ]] || die "usage: background-boot APP (an app name)"
root=/srv/$app
record=$root/background.json

if [[ ! -f $record ]]; then
  log "no record $record: nothing to start"
  exit 0
fi
exec 9<>"$root/.lock" || die "cannot open $root/.lock"
flock -w 900 9 || die "timed out waiting for $root/.lock"
# A step that held the lock may have changed the record.
if [[ ! -f $record ]]; then
  log "no record $record: nothing to start"
  exit 0
fi

read -r slot release worker beat < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["slot"], r["release"], str(r["worker"]).lower(), str(r["beat"]).lower())
' "$record") || die "the record $record cannot be read"
[[ $slot =~ ^(blue|green)$ && $release =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ && $release != *..* ]] ||
  die "the record $record names no slot and release"
[[ $worker =~ ^(true|false)$ && $beat =~ ^(true|false)$ ]] || die "the record $record has no worker and beat flags"
current=$(readlink "$root/background" || true)
[[ $current == "releases/$release" ]] ||
  die "the record names release $release, but $root/background points at ${current:-nothing}: starting nothing"
[[ -f $root/releases/$release/.artifact-sha256 ]] || die "release $release is not on this host: starting nothing"

ctl() { sudo -n /usr/bin/supervisorctl "$@"; }
started=()
for p in worker beat; do
  [[ ${!p} == true ]] || continue
  if [[ $(ctl status "$app-$p" 2>/dev/null || true) == *" RUNNING "* ]]; then
    log "$app-$p already runs"
    continue
  fi
  ctl start "$app-$p" || die "$app-$p of release $release did not start: see /var/log/$app/$p.log"
  started+=("$p")
done
log "release $release ($slot): started ${started[*]:-nothing} (worker $worker, beat $beat)"
