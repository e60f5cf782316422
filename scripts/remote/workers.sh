#!/usr/bin/env bash
# greenlight workers: moves this host's background processes (greenlight.json's "worker", and
# "beat" on the first host only) to the live release, in two phases that the release graph runs
# after the listener's cutover (or a rollback's), on every host:
#
#   stop   the record (below) goes, then the running worker and beat get supervisor's stop:
#          SIGTERM, which is Celery's warm shutdown (no new task is taken, running ones
#          finish), then SIGKILL to the whole group once the program's stopwaitsecs
#          (bootstrap.sh) have passed. Tasks are acknowledged late (the site's settings), so what
#          a killed worker held goes back to the queue; what waits in Redis meanwhile stays there.
#   start  once every host has stopped: /srv/<app>/background points at the live release and
#          its worker (and, with GL_BEAT, its beat) start, each checked RUNNING by supervisor;
#          then the record names them.
#   off    the delete of a workers-start step (the stack no longer has Redis, or the step was
#          replaced by a newer release's): stops the worker and beat and removes the record,
#          but only when the record names GL_SLOT and GL_RELEASE, the ones the step started
#          (with no record, when /srv/<app>/background names GL_RELEASE: a host whose workers
#          started before records existed). Otherwise it changes nothing: the delete of an old
#          step never stops a newer release's workers.
#
# The record, /srv/<app>/background.json: {"slot":...,"release":...,"worker":true|false,
# "beat":true|false}, what this host runs once a start succeeded. supervisor's
# <app>-background-boot (background-boot.sh) starts what it names when supervisor starts (a
# reboot); the worker and beat programs themselves never start on their own (autostart=false).
# No record (after a stop, a failed start, an off): a reboot starts nothing.
#
# A host whose processes already run the release changes nothing (stop and start are no-ops).
# Prints {"mode":...,"host":...,"release":...,"worker":...,"beat":...,"seconds":...}
# (stop and off: what they stopped; off: whether the record named its slot and release, "matched").
#
# Values: GL_APP GL_MODE (stop|start|off); for start and off: GL_SLOT GL_RELEASE;
# for start: [GL_BEAT=1: this host runs beat].
# stop names no release, so its command is the same for every release (a preview shows only
# its new triggers).
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=workers

require GL_APP GL_MODE
check_app
check GL_MODE '^(stop|start|off)$' "stop, start or off"
GL_BEAT=${GL_BEAT:-0}
check GL_BEAT '^[01]$' "0 or 1"
app_paths
lock

link=$APP_ROOT/background
current=$(readlink "$link" || true)
record=$APP_ROOT/background.json
started=$SECONDS

ctl() { sudo -n /usr/bin/supervisorctl "$@"; }
running() { [[ $(ctl status "$GL_APP-$1" 2>/dev/null || true) == *" RUNNING "* ]]; }
declares() { [[ -n $(manifest_get "$1" "$release") ]]; }
# manifest_get FIELD DIR: the field of DIR's manifest.json, "" when the release declares none.
manifest_get() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[2] + "/manifest.json")).get(sys.argv[1])
print(" ".join(v) if v else "")
' "$1" "$2"
}
# record_names: the record's "slot release", "" when there is none (or it cannot be read).
record_names() {
  [[ -f $record ]] || return 0
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["slot"], r["release"])
' "$record" 2>/dev/null || log "the record $record cannot be read: taken as none"
}
write_record() {
  printf '{"slot":"%s","release":"%s","worker":%s,"beat":%s}\n' "$GL_SLOT" "$GL_RELEASE" "$worker" "$beat" \
    >"$APP_ROOT/.background.json.new"
  mv -f -- "$APP_ROOT/.background.json.new" "$record"
}
# stop_all VAR: beat first (nothing new is scheduled while the workers drain), then the worker;
# the names of those it stopped go into the array VAR.
stop_all() {
  local -n into=$1
  local p
  for p in beat worker; do
    if running "$p"; then
      log "stopping $GL_APP-$p of ${current:-no release} (warm shutdown: running tasks finish first)"
      ctl stop "$GL_APP-$p" >&2 || die "supervisor could not stop $GL_APP-$p"
      into+=("$p")
    fi
  done
}
program_state=$(ctl status "$GL_APP-worker" 2>&1 || true)
if [[ $program_state == *"no such process"* ]]; then
  die "supervisor has no program $GL_APP-worker on $(hostname): run its bootstrap first"
fi

worker=false
beat=false
case $GL_MODE in
  stop)
    # No record from here on: a reboot before the start starts nothing (not the old release).
    rm -f -- "$record"
    stopped=()
    stop_all stopped
    log "stopped ${stopped[*]:-nothing} in $((SECONDS - started)) s"
    printf '{"mode":"stop","host":"%s","release":"%s","stopped":"%s","seconds":%s}\n' \
      "$(hostname)" "${current#releases/}" "${stopped[*]}" "$((SECONDS - started))"
    exit 0
    ;;
  off)
    require GL_SLOT GL_RELEASE
    check_slot
    check_release
    names=$(record_names)
    mine=0
    if [[ -n $names ]]; then
      [[ $names == "$GL_SLOT $GL_RELEASE" ]] && mine=1
      why="the record names ${names/ / release }"
    else
      [[ $current == "releases/$GL_RELEASE" ]] && mine=1
      why="no record, background points at ${current:-nothing}"
    fi
    stopped=()
    matched=false
    if ((mine)); then
      matched=true
      rm -f -- "$record"
      stop_all stopped
      log "off for $GL_SLOT release $GL_RELEASE ($why): stopped ${stopped[*]:-nothing}, no record"
    else
      log "off for $GL_SLOT release $GL_RELEASE: $why, not this one: nothing changed"
    fi
    printf '{"mode":"off","host":"%s","release":"%s","stopped":"%s","matched":%s,"seconds":%s}\n' \
      "$(hostname)" "$GL_RELEASE" "${stopped[*]}" "$matched" "$((SECONDS - started))"
    exit 0
    ;;
  start)
    require GL_SLOT GL_RELEASE
    check_slot
    check_release
    release=$RELEASES/$GL_RELEASE
    [[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"
    want_beat=0
    if ((GL_BEAT)) && declares beat; then want_beat=1; fi
    want_worker=0
    if declares worker; then want_worker=1; fi
    # Already there: the link names this release and what it declares runs (beat only where it should).
    in_place() {
      [[ $current == "releases/$GL_RELEASE" ]] || return 1
      if ((want_worker)); then running worker || return 1; else ! running worker || return 1; fi
      if ((want_beat)); then running beat || return 1; else ! running beat || return 1; fi
    }
    if in_place; then
      log "worker and beat already run release $GL_RELEASE"
    else
      # Until they run, no record: a reboot meanwhile starts nothing.
      rm -f -- "$record"
      # What still runs (another release's, or this one's beat where it should not) stops first.
      stopped=()
      stop_all stopped
      ln -sfn "releases/$GL_RELEASE" "$APP_ROOT/.background.new"
      mv -T "$APP_ROOT/.background.new" "$link"
      log "background points at release $GL_RELEASE"
      if ((want_worker)); then
        ctl start "$GL_APP-worker" >&2 || die "the worker of release $GL_RELEASE did not start: see /var/log/$GL_APP/worker.log"
      else
        log "release $GL_RELEASE declares no worker"
      fi
      if ((want_beat)); then
        ctl start "$GL_APP-beat" >&2 || die "the beat of release $GL_RELEASE did not start: see /var/log/$GL_APP/beat.log"
      fi
    fi
    ((want_worker)) && running worker && worker=true
    ((want_beat)) && running beat && beat=true
    if ((want_worker)) && [[ $worker != true ]]; then die "the worker of release $GL_RELEASE is not running"; fi
    if ((want_beat)) && [[ $beat != true ]]; then die "the beat of release $GL_RELEASE is not running"; fi
    write_record
    log "recorded in $record: what a reboot starts"
    ;;
esac

printf '{"mode":"%s","host":"%s","release":"%s","worker":%s,"beat":%s,"seconds":%s}\n' \
  "$GL_MODE" "$(hostname)" "$GL_RELEASE" "$worker" "$beat" "$((SECONDS - started))"
