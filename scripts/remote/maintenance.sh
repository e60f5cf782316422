#!/usr/bin/env bash
# greenlight maintenance: turns this host's maintenance mode on or off. While it is on, nginx
# answers every request of both slots but the health path with 503, Retry-After and a short
# maintenance page (bootstrap.sh): for a release that breaks compatibility with the one serving
# (allowUnsafeMigrations) and for a restore, so that no request reaches code that cannot work
# with the schema, and no write is acknowledged that the restore would then discard. The mode is
# the file /srv/<app>/maintenance (what nginx looks for on each request), written atomically;
# it names why it is on. Idempotent. Prints {"maintenance":"on"|"off","host":...,"reason":...}.
#
# Values: GL_APP GL_MODE (on|off) [GL_REASON, for on: "release r5", "restore db/...dump"]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=maintenance

require GL_APP GL_MODE
check_app
check GL_MODE '^(on|off)$' "on or off"
app_paths
lock

case $GL_MODE in
  on)
    require GL_REASON
    maintenance_on "$GL_REASON"
    ;;
  off)
    GL_REASON=""
    maintenance_off
    ;;
esac
printf '{"maintenance":"%s","host":"%s","reason":"%s","at":"%s"}\n' \
  "$GL_MODE" "$(hostname)" "$GL_REASON" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
