#!/usr/bin/env bash
# greenlight activate: points slot GL_SLOT at release GL_RELEASE with an atomic symlink swap,
# restarts that slot only, and waits until the slot's port answers the health path with the
# release id. On failure the slot goes back to its previous release and the step fails, so
# the listener never moves to it. The other slot is never touched.
#
# Values: GL_APP GL_SLOT GL_RELEASE GL_PORT GL_HEALTH_PATH [GL_HEALTH_TIMEOUT seconds]
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

release=$RELEASES/$GL_RELEASE
[[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"
link=$APP_ROOT/$GL_SLOT
previous=$(readlink "$link" || true)

point_slot_at() { # atomic: a new link renamed over the old one
  ln -sfn "$1" "$APP_ROOT/.$GL_SLOT.new"
  mv -T "$APP_ROOT/.$GL_SLOT.new" "$link"
}

restart_slot() {
  sudo -n /usr/bin/supervisorctl restart "$GL_APP-$GL_SLOT" >&2
}

# Polls (bounded) until the slot serves the expected release id.
healthy() {
  local deadline=$((SECONDS + GL_HEALTH_TIMEOUT)) body=""
  while ((SECONDS < deadline)); do
    body=$(curl -fsS --max-time 5 "http://127.0.0.1:$GL_PORT$GL_HEALTH_PATH" 2>/dev/null || true)
    if [[ $body == "$GL_RELEASE" ]]; then return 0; fi
    sleep 1
  done
  log "health check: http://127.0.0.1:$GL_PORT$GL_HEALTH_PATH answered '${body:0:80}', wanted '$GL_RELEASE'"
  return 1
}

log "slot $GL_SLOT: ${previous:-nothing} -> releases/$GL_RELEASE"
point_slot_at "releases/$GL_RELEASE"
if restart_slot && healthy; then
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
