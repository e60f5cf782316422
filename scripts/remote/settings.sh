#!/usr/bin/env bash
# greenlight settings: the environment's SSM parameters changed (a rotated secret, a new app
# secret, a new database address): render shared/.env again, check that each running slot's
# release boots on it, and reload the running slots, one after the other, each gated on its
# health path. gunicorn's HUP starts new workers, which read the new .env, and retires the
# old ones; the socket stays open. A slot passes its gate when
# its master runs only new workers and the health path answers with the slot's release id. If
# a slot fails its gate (a setting that stops the app booting), the previous .env comes back,
# the slots reloaded so far reload (or restart) on it, and the step fails: the program runs
# this host after host, so the next host is never touched. The release in each slot stays.
#
# Values: GL_APP GL_PARAMETER_PATH GL_REGION GL_HEALTH_PATH GL_BLUE_PORT GL_GREEN_PORT
#         [GL_HEALTH_TIMEOUT seconds]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=settings

require GL_APP GL_PARAMETER_PATH GL_REGION GL_HEALTH_PATH GL_BLUE_PORT GL_GREEN_PORT
GL_HEALTH_TIMEOUT=${GL_HEALTH_TIMEOUT:-90}
check_app
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
check GL_HEALTH_PATH '^/[A-Za-z0-9/._-]*$' "an absolute path"
check GL_BLUE_PORT '^[0-9]{4,5}$' "a port"
check GL_GREEN_PORT '^[0-9]{4,5}$' "a port"
check GL_HEALTH_TIMEOUT '^[0-9]{1,4}$' "seconds"
app_paths
lock

env=$SHARED/.env
previous=$SHARED/.settings/env.new
render_env_new
# The new settings in place at once; the previous ones kept next to them (still the app's, 0600).
swap_files "$previous" "$env"
log "rendered shared/.env from $GL_PARAMETER_PATH (the previous one kept until every slot passed its gate)"

# Before any slot reloads, each running slot's release must boot on the new settings: its own
# python imports its WSGI application (what a new gunicorn worker does first), reading the new
# .env. A setting that stops the app booting is caught here, whichever colour serves (this host
# cannot know which one the load balancer sends traffic to), and no slot is touched: a reload
# that fails kills the slot's gunicorn, and on the serving colour that would be downtime.
boots() {
  local slot=$1 dir wsgi
  dir=$APP_ROOT/$(readlink "$APP_ROOT/$slot")
  wsgi=$(manifest wsgi "$dir")
  as_app "$dir" python -c '
import importlib, sys
module, name = sys.argv[1].split(":")
getattr(importlib.import_module(module), name)
' "$wsgi" >&2
}

port_of() { if [[ $1 == blue ]]; then echo "$GL_BLUE_PORT"; else echo "$GL_GREEN_PORT"; fi; }
master_of() {
  sudo -n /usr/bin/supervisorctl status "$GL_APP-$1" 2>/dev/null | sed -n 's/.* RUNNING *pid \([0-9]*\),.*/\1/p'
}
workers_of() { pgrep -P "$1" | sort -n | tr '\n' ' ' || true; }

# gate SLOT MASTER OLD_WORKERS: bounded poll until MASTER (the same master: one that exited on
# the reload failed it) runs only workers other than OLD_WORKERS and the slot's health path
# answers with its release id.
gate() {
  local slot=$1 master=$2 old=" $3" port release deadline now w body="" fresh
  port=$(port_of "$slot")
  release=$(readlink "$APP_ROOT/$slot" || true)
  release=${release#releases/}
  deadline=$((SECONDS + GL_HEALTH_TIMEOUT))
  while ((SECONDS < deadline)); do
    [[ $(master_of "$slot") == "$master" ]] || {
      log "slot $slot: its gunicorn exited on the reload"
      return 1
    }
    now=$(workers_of "$master")
    fresh=1
    for w in $now; do [[ $old == *" $w "* ]] && fresh=0; done
    if [[ -n $now ]] && ((fresh)); then
      body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port$GL_HEALTH_PATH" 2>/dev/null || true)
      [[ $body == "$release" ]] && return 0
    fi
    sleep 0.2
  done
  log "slot $slot: no healthy new workers within ${GL_HEALTH_TIMEOUT}s (health answered '${body:0:80}', wanted '$release')"
  return 1
}

# reload SLOT: HUP, then the gate.
reload() {
  local slot=$1 master old
  master=$(master_of "$slot")
  old=$(workers_of "$master")
  sudo -n /usr/bin/supervisorctl signal HUP "$GL_APP-$slot" >&2
  gate "$slot" "$master" "$old"
}

for slot in blue green; do
  [[ -n $(master_of "$slot") ]] || continue
  if boots "$slot"; then continue; fi
  log "the release of slot $slot does not boot on the new settings (its output is above)"
  swap_files "$previous" "$env"
  rm -f -- "$previous"
  die "the new settings stop slot $slot's release from booting on $(hostname): .env is back as it was and no slot was reloaded; fix the setting in SSM and run pulumi up again"
done

reloaded=()
for slot in blue green; do
  [[ -n $(master_of "$slot") ]] || continue
  reloaded+=("$slot")
  if reload "$slot"; then
    log "slot $slot reloaded on the new settings and passed its gate"
    continue
  fi
  log "last lines of the slot's log:"
  tail -n 20 "/var/log/$GL_APP/$slot.log" >&2 2>/dev/null || true
  log "putting the previous settings back and reloading ${reloaded[*]} on them"
  swap_files "$previous" "$env"
  for s in "${reloaded[@]}"; do
    if [[ -n $(master_of "$s") ]] && reload "$s"; then continue; fi
    sudo -n /usr/bin/supervisorctl restart "$GL_APP-$s" >&2 || log "slot $s did not restart on the previous settings"
  done
  rm -f -- "$previous"
  die "the new settings failed slot $slot's health gate on $(hostname): .env is back as it was and ${reloaded[*]} run on it; fix the setting in SSM and run pulumi up again"
done
rm -f -- "$previous"
log "reloaded: ${reloaded[*]:-no running slot}"
# The background processes (workers.sh) read .env when they start: a warm restart of those
# that run (running tasks finish first, within their stopwaitsecs).
for p in beat worker; do
  if [[ $(sudo -n /usr/bin/supervisorctl status "$GL_APP-$p" 2>/dev/null || true) == *" RUNNING "* ]]; then
    sudo -n /usr/bin/supervisorctl stop "$GL_APP-$p" >&2
    sudo -n /usr/bin/supervisorctl start "$GL_APP-$p" >&2 || die "$GL_APP-$p did not start again on the new settings: see /var/log/$GL_APP/$p.log"
    log "$GL_APP-$p restarted on the new settings"
  fi
done
printf '{"rendered":true,"reloaded":"%s"}\n' "${reloaded[*]}"
