#!/bin/sh
# /usr/sbin/service inside a rig host (bind-mounted there by host-init.sh; the machine's
# own /usr/sbin/service is untouched).
#
# On an EC2 Debian 12 host, `service NAME ACTION` runs `systemctl ACTION NAME.service`:
# the unit file decides what happens. Rig hosts have no systemd, so Debian's `service`
# falls back to /etc/init.d/NAME, and some init scripts do not do what the unit does:
#   - supervisor's init script `restart` stops supervisord and never starts it again;
#   - supervisor's init script has no `reload` (the unit runs `supervisorctl reload`);
#   - supervisor's `start` exits 1 when supervisord already runs (systemctl: success),
#     which breaks every idempotent re-run of a bootstrap script.
# This wrapper gives rig hosts the systemd meaning of these actions, generically:
#   start    : success if the service already runs (`init.d NAME status` exits 0);
#   restart  : the init script's restart, then start if the service is not running;
#   reload   : the unit's ExecReload= commands when the init script has no reload.
# Everything else goes to the init script exactly as Debian's `service` does without systemd.
set -u

initd=/etc/init.d

if [ $# -eq 0 ]; then
  echo "Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]" >&2
  exit 1
fi

# Same environment as Debian's `service` gives an init script.
run_initd() {
  (cd / && exec env -i LANG="${LANG:-}" LANGUAGE="${LANGUAGE:-}" LC_ALL="${LC_ALL:-}" \
    PATH="${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}" TERM="${TERM:-dumb}" \
    "$initd/$1" "$2")
}

is_running() {
  run_initd "$1" status >/dev/null 2>&1
}

case "$1" in
  --help | -h)
    echo "Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]" >&2
    exit 0
    ;;
  --status-all)
    for script in "$initd"/*; do
      name=${script##*/}
      case "$name" in README | skeleton | rc | rcS | *.dpkg-*) continue ;; esac
      [ -x "$script" ] || continue
      if is_running "$name"; then echo " [ + ]  $name"; else echo " [ - ]  $name"; fi
    done
    exit 0
    ;;
esac

name=$1
action=${2:-}
if [ ! -x "$initd/$name" ]; then
  echo "$name: unrecognized service" >&2
  exit 1
fi
if [ -z "$action" ]; then
  run_initd "$name" ""
  exit $?
fi

case "$action" in
  start)
    if is_running "$name"; then
      exit 0
    fi
    run_initd "$name" start
    ;;
  restart | --full-restart)
    if [ "$action" = --full-restart ]; then
      run_initd "$name" stop || true
    else
      run_initd "$name" restart || exit $?
    fi
    if ! is_running "$name"; then
      run_initd "$name" start
    fi
    ;;
  reload)
    unit=/lib/systemd/system/$name.service
    if grep -Eq '^[[:space:]]*([a-z-]+[|])*reload([|][a-z-]+)*[)]' "$initd/$name" || [ ! -f "$unit" ]; then
      run_initd "$name" reload
    else
      if ! is_running "$name"; then
        echo "$name is not active, cannot reload." >&2
        exit 1
      fi
      # ExecReload= prefixes (-, @, +, !) are systemd flags, not part of the command;
      # unset unit variables ($OPTIONS) expand to nothing, as in systemd.
      sed -n 's/^ExecReload=[-@+!]*//p' "$unit" | while IFS= read -r cmd; do
        (cd / && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin sh -c "$cmd") || exit $?
      done
    fi
    ;;
  *)
    run_initd "$name" "$action"
    ;;
esac
