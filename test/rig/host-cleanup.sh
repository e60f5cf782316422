#!/bin/sh
# Removes everything a rig with this prefix may have left: the processes of its hosts,
# their network namespaces, its links (bridge, veths) and its directory (a tmpfs). Used by
# HostRig.stop(), by the exit handler, and by startHosts() against a crashed earlier run.
# Exits 1 if a process of a host survived SIGKILL for 10 s (then nothing else is removed
# from under it but the links).
#
# usage: host-cleanup.sh PREFIX ROOT_DIR [INIT_PID...]
#   INIT_PID: root-namespace pids of the hosts' PID 1 (tini), killed first (see below).
set -u

prefix=$1
root=$2
shift 2

case "$prefix" in
  "" | *[!a-z0-9]*)
    echo "host-cleanup: refusing prefix '$prefix'" >&2
    exit 2
    ;;
esac
# The only directory this may delete is the rig's own: <somewhere>/<prefix>-rig.
if [ "${root##*/}" != "$prefix-rig" ]; then
  echo "host-cleanup: refusing to remove '$root'" >&2
  exit 2
fi

# Each host's PID 1 goes first, and alone: the kernel then kills its whole pid namespace
# and unshare, its parent, reaps it and exits. Killing unshare at the same time would leave
# PID 1 to the machine's init, which here does not reap: a zombie per host.
inits=""
for pid in "$@"; do
  # only if that pid is still a pid-namespace init running tini (pids get reused)
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tini ] && grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$pid/status" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    inits="$inits $pid"
  fi
done
tries=0
while [ "$tries" -lt 100 ]; do
  alive=""
  for pid in $inits; do
    if [ -e "/proc/$pid" ]; then alive="$alive $pid"; fi
  done
  if [ -z "$alive" ]; then break; fi
  sleep 0.05
  tries=$((tries + 1))
done

namespaces=$(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^$prefix-" || true)

pids_left() {
  for ns in $namespaces; do
    ip netns pids "$ns" 2>/dev/null
  done
}

# Killing a host's PID 1 (tini) makes the kernel kill its whole pid namespace; processes
# that only joined the network namespace (an nsenter of HostRig.exec) go with the same loop.
left=$(pids_left)
tries=0
while [ -n "$left" ] && [ "$tries" -lt 200 ]; do
  # shellcheck disable=SC2086 # one pid per word
  kill -KILL $left 2>/dev/null || true
  sleep 0.05
  tries=$((tries + 1))
  left=$(pids_left)
done

for ns in $namespaces; do
  ip netns delete "$ns" 2>/dev/null || true
done

# Deleting a namespace deletes the veth peer inside it, and with it the pair; what is left
# is the bridge, and veths whose namespace was already gone.
for link in $(ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \([^:@]*\)[:@].*/\1/p' | grep -E "^$prefix-" || true); do
  ip link delete "$link" 2>/dev/null || true
done

if [ -n "$left" ]; then
  echo "host-cleanup: processes still alive after SIGKILL: $left" >&2
  exit 1
fi
# The rig's directory is a tmpfs mounted by startHosts (possibly more than once, if a
# crashed run was followed by a failed one).
tries=0
while mountpoint -q -- "$root" && [ "$tries" -lt 10 ]; do
  umount -- "$root" 2>/dev/null || umount -l -- "$root"
  tries=$((tries + 1))
done
rm -rf -- "$root"
