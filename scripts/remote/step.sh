#!/usr/bin/env bash
# greenlight step runner: every release step the program runs on a host is one short line,
#
#   bash /srv/greenlight-scripts/<scripts-id>/step.sh STEP GL_NAME='value'...
#
# (the bootstrap: `sudo -n bash /home/admin/.greenlight/<scripts-id>/remote/step.sh bootstrap
# ...`, from the copy the program puts there). This runner
#   - runs STEP's script under a hard limit of GL_TIMEOUT seconds (coreutils timeout, then the
#     step's whole process group, the app user's processes in it too, is killed; its lock goes
#     with it);
#   - writes everything the step prints on stderr to a log on this host, never to the SSH
#     session (pulumi-command puts a failed command's whole output into its error message);
#   - on success prints the step's result (its stdout, JSON) and records it, so that an update
#     that is not a new release prints it again (see components/remote.ts, updateCommand);
#   - on failure prints a short summary on stderr: the step, this host, why, the log's path
#     and its last lines (for check, migrate and restore, whose output comes from the app's own
#     code, only greenlight's own lines), or, when the step wrote one to $GL_MESSAGE_FILE, its
#     own message for the operator instead of the last lines (the check's refusal); for a step
#     inside a maintenance window (GL_MAINTENANCE), that the site stays in maintenance mode and
#     how it ends.
#
# Values: GL_TIMEOUT (seconds), GL_APP, and the step's own (see the step's script).
set -Euo pipefail
umask 077
export LC_ALL=C.UTF-8
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "${BASH_SOURCE[0]%/*}" && pwd -P)
host=$(hostname)
step=${1:-}

fail() {
  printf 'greenlight %s on %s: %s\n' "${step:-?}" "$host" "$*" >&2
  exit 2
}

case $step in
  bootstrap | settings | fetch | check | backup | migrate | activate | cleanup | restore | maintenance | workers) ;;
  *) fail "not a greenlight step: '${step:0:40}'" ;;
esac
shift
for arg in "$@"; do
  name=${arg%%=*}
  [[ $arg == *=* && $name =~ ^GL_[A-Z0-9_]+$ ]] || fail "not a GL_NAME=value argument: '${arg:0:40}'"
  export "$name=${arg#*=}"
done

[[ ${GL_TIMEOUT:-} =~ ^[1-9][0-9]{0,4}$ ]] || fail "GL_TIMEOUT is not a number of seconds"
[[ ${GL_APP:-} =~ ^[a-z][a-z0-9]{1,15}$ ]] || fail "GL_APP is not an app name"
[[ -z ${GL_SLOT:-} || $GL_SLOT =~ ^(blue|green)$ ]] || fail "GL_SLOT is not blue or green"
[[ -z ${GL_RELEASE:-} || $GL_RELEASE =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
  fail "GL_RELEASE is not a release id (letters, digits, . _ -)"

[[ -z ${GL_RESTORE_ID:-} || ($GL_RESTORE_ID =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ && $GL_RESTORE_ID != *..*) ]] ||
  fail "GL_RESTORE_ID is not a restore id (letters, digits, . _ -)"

# What the step's result is recorded as: per slot and release for a release's steps; per request
# for a restore (the first 16 hex digits of the sha256 of its backup key, and of "\n" and its
# restore id when it has one: components/remote.ts, restoreRequest), so that a retried restore
# finds its own record and a new request (another key or id) none.
request=""
if [[ $step == restore ]]; then
  request=$(printf '%s' "${GL_BACKUP_KEY:-}${GL_RESTORE_ID:+$'\n'$GL_RESTORE_ID}" | sha256sum | cut -c1-16)
fi
record=${GL_SLOT:+$GL_SLOT.}${GL_RELEASE:+$GL_RELEASE.}$step${request:+.$request}${GL_MODE:+.$GL_MODE}
[[ -z ${GL_MODE:-} || $GL_MODE =~ ^(on|off|stop|start)$ ]] || fail "GL_MODE is not on, off, stop or start"
if [[ $step == bootstrap ]]; then
  [[ $(id -u) -eq 0 ]] || fail "the bootstrap must run as root"
  logdir=/var/log/greenlight
  install -d -m 0700 "$logdir"
  results=""
else
  results=/srv/$GL_APP/steps
  [[ -d $results/log && -w $results/log ]] ||
    fail "$results/log is missing or not writable: the bootstrap must run first"
  logdir=$results/log
  # Where this step's result is recorded: the steps that must not run twice for one release
  # (lib.sh, once) look there first, and record it themselves before releasing the lock.
  export GL_RECORD=$results/$record.json
fi
log=$logdir/$GL_APP.$record.$(date -u +%Y%m%dT%H%M%S.%3NZ).log
out=$log.out
: >"$log"
: >"$out"
# A message the step may leave for the operator when it fails (shown instead of the last lines).
export GL_MESSAGE_FILE=$log.message
rm -f -- "$GL_MESSAGE_FILE"

# Keeps the newest 200 logs.
find "$logdir" -maxdepth 1 -name '*.log' -printf '%T@ %p\n' | sort -rn | tail -n +201 | cut -d' ' -f2- |
  xargs -r rm -f --

human() { # seconds as "20 min" or "45 s"
  if (($1 % 60 == 0)); then printf '%s min' $(($1 / 60)); else printf '%s s' "$1"; fi
}

# kill_group PGID: TERM, then KILL, to every process in the group (the app user's ones through
# sudoers' kill rule), each time waiting up to 10 s for the group to be gone.
kill_group() {
  local g=$1 sig i
  ((g > 1)) || return 0
  for sig in TERM KILL; do
    kill "-$sig" -- "-$g" 2>/dev/null || true
    if [[ $(id -u) -ne 0 ]]; then sudo -n -u app /usr/bin/kill "-$sig" -- "-$g" 2>/dev/null || true; fi
    for ((i = 0; i < 100; i++)); do
      pgrep -g "$g" >/dev/null || return 0
      sleep 0.1
    done
  done
}

started=$SECONDS
# timeout puts itself and the step in a process group of their own; on expiry it signals the
# whole group, and KILLs it 10 s later. stdin is closed, stdout goes to a file, stderr to the log.
timeout --kill-after=10s "${GL_TIMEOUT}s" bash "$here/$step.sh" </dev/null >"$out" 2>>"$log" &
group=$!
wait "$group"
rc=$?
elapsed=$((SECONDS - started))
timed_out=0
if ((rc == 124 || rc == 137)) && ((elapsed >= GL_TIMEOUT)); then
  timed_out=1
  printf '%s greenlight %s: timed out after %s: stopping every process it started\n' \
    "$(date -u +%H:%M:%S.%3N)" "$step" "$(human "$GL_TIMEOUT")" >>"$log"
fi
# Whatever a stopped or failed step left behind in its group (a command that ignored the
# signal, a background job) goes now. (Not after a bootstrap that succeeded: the services it
# started are daemons in groups of their own, but nothing is risked on it.)
if ((timed_out)) || { ((rc != 0)) && [[ $step != bootstrap ]]; }; then
  if pgrep -g "$group" >/dev/null; then kill_group "$group"; fi
fi

if ((rc == 0 && !timed_out)); then
  if [[ -n $results ]]; then
    cp "$out" "$results/.$record.json.new"
    mv -f "$results/.$record.json.new" "$results/$record.json"
  fi
  cat "$out"
  rm -f "$out" "$GL_MESSAGE_FILE"
  printf 'greenlight %s on %s: done in %s s (log: %s)\n' "$step" "$host" "$elapsed" "$log" >&2
  exit 0
fi

# The step's partial stdout belongs to the log too.
if [[ -s $out ]]; then
  {
    echo "--- the step's stdout:"
    cat "$out"
  } >>"$log"
fi
rm -f "$out"

# The last lines, short and printable. migrate and restore run the app's own code, whose output
# may carry anything (the program marks it secret): only greenlight's own lines leave the host.
quiet=0
case $step in check | migrate | restore) quiet=1 ;; esac
last_lines() {
  tail -n 400 "$log" | if ((quiet)); then
    grep -aE '^[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})? greenlight [a-z]+: ' || true
  else
    cat
  fi | tail -n 16 | tr -d '\000-\010\013-\037\177' | LC_ALL=C cut -b 1-180 | head -c 2600
}

{
  if ((timed_out)); then
    printf 'greenlight %s timed out after %s on %s: it and every process it started were stopped, and its lock released.\n' \
      "$step" "$(human "$GL_TIMEOUT")" "$host"
  else
    printf 'greenlight %s failed on %s (exit %s after %s s).\n' "$step" "$host" "$rc" "$elapsed"
  fi
  printf 'The whole log stays on the host: %s\n' "$log"
  if ((!timed_out)) && [[ -s $GL_MESSAGE_FILE ]]; then
    # The step's own message, printable and bounded (a few findings fit; the log has them all).
    tr -d '\000-\010\013-\037\177' <"$GL_MESSAGE_FILE" | head -c 3000
    echo
  else
    if ((quiet)); then echo "Its last lines of greenlight's own (the app's output is only in the log):"; else echo "Its last lines:"; fi
    last_lines | sed 's/^/  /'
  fi
  # Pulumi runs nothing after a failed step, so the maintenance-off steps wait for the next
  # `pulumi up`: say so, and how else it ends.
  if [[ -n ${GL_MAINTENANCE:-} ]]; then
    printf 'Maintenance mode stays on (%s): every host answers 503 with Retry-After. It ends when a
' "${GL_MAINTENANCE:0:80}"
    echo "pulumi up succeeds: the fixed release goes live, or the stack no longer names this one (allowUnsafeMigrations,"
    echo "restoreBackup). A database this step may have changed may need the backup first (restoreBackup). By hand, on"
    echo "each host: bash $here/step.sh maintenance GL_APP=$GL_APP GL_MODE=off GL_TIMEOUT=60"
  fi
} >&2
rm -f -- "$GL_MESSAGE_FILE"
((rc == 0)) && rc=1
exit "$rc"
