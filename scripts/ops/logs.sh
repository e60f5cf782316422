#!/usr/bin/env bash
# greenlight logs (npm run logs): the app's log of each slot (gunicorn's output, supervisor
# writes it to /var/log/<app>/<slot>.log) and nginx's (each slot's access log and the error
# log), every line prefixed with where it comes from. Runs as deploy (group app for the app's
# logs, adm for nginx's). With FOLLOW=1 it keeps reading until its stdin closes, which is when
# the SSH session ends (the user's Ctrl-C): then it stops every reader it started.
# components/ops.ts sends this script with the command (bash -c), so it needs no install.
#
# Arguments: APP FOLLOW(0|1) LINES GREP_ERE(or "") SLOT...
set -Eeuo pipefail
export LC_ALL=C.UTF-8
app=$1 follow=$2 lines=$3 grep_re=$4
shift 4
[[ $app =~ ^[a-z][a-z0-9]{1,15}$ && $follow =~ ^[01]$ && $lines =~ ^[0-9]+$ ]] || {
  echo "greenlight logs: bad arguments" >&2
  exit 2
}
if [[ -n $grep_re ]]; then
  # A bad expression fails here, once, rather than in every reader.
  rc=0
  grep -E -q -- "$grep_re" </dev/null || rc=$?
  ((rc < 2)) || exit 2
fi

sources=()
for slot in "$@"; do
  [[ $slot =~ ^(blue|green)$ ]] || {
    echo "greenlight logs: not a slot: $slot" >&2
    exit 2
  }
  sources+=("app-$slot=/var/log/$app/$slot.log" "nginx-$slot=/var/log/nginx/$app-$slot.access.log")
done
sources+=("nginx-error=/var/log/nginx/error.log")

# read_one LABEL FILE: the file's lines (the last LINES, then new ones when following), filtered,
# prefixed. sed -u and grep --line-buffered pass each line on at once.
read_one() {
  local label=$1 file=$2
  # A slot that never ran has no log yet: nothing to say (followed, it is read once it appears).
  [[ -e $file ]] || ((follow)) || return 0
  if [[ -e $file && ! -r $file ]]; then
    echo "greenlight logs: $file is not readable by $(id -un) on $(hostname)" >&2
    return 0
  fi
  local tail_args=(-n "$lines")
  ((follow)) && tail_args+=(-F)
  if [[ -n $grep_re ]]; then
    tail "${tail_args[@]}" -- "$file" 2>/dev/null | grep --line-buffered -E -- "$grep_re" | sed -u "s/^/$label | /" || true
  else
    tail "${tail_args[@]}" -- "$file" 2>/dev/null | sed -u "s/^/$label | /" || true
  fi
}

if ((follow)); then
  # Every reader in this process group; the session's end (stdin EOF) stops them all.
  trap 'trap - EXIT; kill -TERM 0 2>/dev/null || true' EXIT
  for s in "${sources[@]}"; do read_one "${s%%=*}" "${s#*=}" & done
  cat >/dev/null || true
else
  for s in "${sources[@]}"; do read_one "${s%%=*}" "${s#*=}"; done
fi
