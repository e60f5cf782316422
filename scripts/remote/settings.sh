#!/usr/bin/env bash
# greenlight settings: the environment's SSM parameters changed (a rotated secret, a new app
# secret, a new database address): render shared/.env again and reload the running slots
# gracefully (gunicorn's HUP starts new workers, which read the new .env, then retires the
# old ones; the socket stays open, so no request fails). The release in each slot stays.
#
# Values: GL_APP GL_PARAMETER_PATH GL_REGION
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=settings

require GL_APP GL_PARAMETER_PATH GL_REGION
check_app
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
app_paths
lock

render_env
reloaded=()
for slot in blue green; do
  if sudo -n /usr/bin/supervisorctl status "$GL_APP-$slot" 2>/dev/null | grep -q RUNNING; then
    sudo -n /usr/bin/supervisorctl signal HUP "$GL_APP-$slot" >&2
    reloaded+=("$slot")
  fi
done
log "reloaded: ${reloaded[*]:-no running slot}"
printf '{"rendered":true,"reloaded":"%s"}\n' "${reloaded[*]}"
