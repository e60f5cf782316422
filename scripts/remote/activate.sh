#!/usr/bin/env bash
# greenlight activate: points slot GL_SLOT at release GL_RELEASE with an atomic symlink swap,
# restarts that slot only (or, on the same venv, reloads it gracefully), and waits until the
# slot's port answers the health path with the release id. On failure the slot goes back to
# its previous release and the step fails, so the listener never moves to it. The other slot
# is never touched.
#
# Values: GL_APP GL_SLOT GL_RELEASE GL_PORT GL_HEALTH_PATH [GL_HEALTH_TIMEOUT seconds] [GL_MAINTENANCE]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=activate

require GL_APP GL_SLOT GL_RELEASE GL_PORT GL_HEALTH_PATH
GL_HEALTH_TIMEOUT=${GL_HEALTH_TIMEOUT:-90}
check_app
check_slot
check_release
check GL_PORT '^[0-9]{4,5}$' "a port"
check GL_HEALTH_PATH '^/[A-Za-z0-9/._-]*$' "an absolute path"
check GL_HEALTH_TIMEOUT '^[0-9]{1,4}$' "seconds"
app_paths
lock
under_maintenance

release=$RELEASES/$GL_RELEASE
[[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"
link=$APP_ROOT/$GL_SLOT
previous=$(readlink "$link" || true)

point_slot_at() { # atomic: a new link renamed over the old one
  ln -sfn "$1" "$APP_ROOT/.$GL_SLOT.new"
  mv -T "$APP_ROOT/.$GL_SLOT.new" "$link"
}

# supervisor's startsecs is 0 (bootstrap.sh): `restart` returns as soon as gunicorn is spawned,
# and the health gate below, not a fixed wait, says when the release is up. The gate watches the
# gunicorn it started (supervisor's pid for the slot): if that process exits before the slot
# answers (a release that cannot boot: gunicorn exits when its workers fail to), the gate fails
# at once rather than at its timeout.
master=""
restart_slot() {
  sudo -n /usr/bin/supervisorctl restart "$GL_APP-$GL_SLOT" >&2 || return 1
  master=$({ sudo -n /usr/bin/supervisorctl status "$GL_APP-$GL_SLOT" 2>/dev/null || true; } |
    sed -n 's/.* RUNNING *pid \([0-9]*\),.*/\1/p')
  [[ -n $master ]] || {
    log "slot $GL_SLOT: its gunicorn exited as it started"
    return 1
  }
}

# A release on the venv the slot's gunicorn already runs needs no new interpreter: HUP makes
# gunicorn re-read gunicorn.conf.py, which names the new release's directory, and replace its
# workers gracefully. That takes as long as the app's import; a restart also starts a new
# interpreter and imports everything before the app. Anything else restarts: another venv (new dependencies), a slot that
# is not running, a release fetched before its gunicorn.conf.py named its directory, a host
# whose sudoers does not allow the signal yet.
reload_or_restart_slot() {
  if [[ -n $previous && -e $APP_ROOT/$previous/venv ]] &&
    [[ $(readlink "$APP_ROOT/$previous/venv") == "$(readlink "$release/venv")" ]] &&
    grep -qxF "chdir = \"$release\"" "$release/gunicorn.conf.py" &&
    sudo -n /usr/bin/supervisorctl signal HUP "$GL_APP-$GL_SLOT" >&2 2>/dev/null; then
    log "same venv as ${previous#releases/}: reloaded slot $GL_SLOT gracefully (HUP)"
    return 0
  fi
  restart_slot
}

# Polls (bounded) until the slot serves the expected release id.
healthy() {
  local deadline=$((SECONDS + GL_HEALTH_TIMEOUT)) body=""
  while ((SECONDS < deadline)); do
    body=$(curl -fsS --max-time 5 "http://127.0.0.1:$GL_PORT$GL_HEALTH_PATH" 2>/dev/null || true)
    if [[ $body == "$GL_RELEASE" ]]; then return 0; fi
    if [[ -n $master && ! -d /proc/$master ]]; then
      log "slot $GL_SLOT: its gunicorn (pid $master) exited before it answered: the release does not boot"
      return 1
    fi
    # A slot is up in about a second; a finer poll does not add most of a second to each.
    sleep 0.1
  done
  log "health check: http://127.0.0.1:$GL_PORT$GL_HEALTH_PATH answered '${body:0:80}', wanted '$GL_RELEASE'"
  return 1
}

log "slot $GL_SLOT: ${previous:-nothing} -> releases/$GL_RELEASE"
point_slot_at "releases/$GL_RELEASE"
# A supervisor program the bootstrap changed while this slot ran (bootstrap.sh never restarts a
# running slot) is applied now: `update` restarts the slot only if its program changed. It runs
# when the program file is newer than this slot's last update (bootstrap.sh rewrites the file
# only when it changes), not on every activation: each supervisorctl call is a Python start.
program_file=/etc/supervisor/conf.d/greenlight-$GL_APP.conf
applied=$APP_ROOT/.$GL_SLOT.supervisor-applied
if [[ ! -e $applied || ! -e $program_file || $program_file -nt $applied ]]; then
  sudo -n /usr/bin/supervisorctl update "$GL_APP-$GL_SLOT" >&2
  touch -- "$applied"
fi
if reload_or_restart_slot && healthy; then
  log "slot $GL_SLOT serves $GL_RELEASE on port $GL_PORT"
  printf '{"slot":"%s","release":"%s","previous":"%s"}\n' "$GL_SLOT" "$GL_RELEASE" "${previous#releases/}"
  exit 0
fi

log "last lines of the slot's log:"
tail -n 30 "/var/log/$GL_APP/$GL_SLOT.log" >&2 2>/dev/null || true
if [[ -n $previous ]]; then
  log "putting slot $GL_SLOT back on $previous"
  point_slot_at "$previous"
  restart_slot || log "the previous release did not restart either"
else
  rm -f "$link"
  sudo -n /usr/bin/supervisorctl stop "$GL_APP-$GL_SLOT" >&2 || true
fi
die "release $GL_RELEASE failed its health check on slot $GL_SLOT; traffic stays where it is"
