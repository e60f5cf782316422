#!/bin/sh
# First process of a rig host, run by tini (PID 1) inside the host's own mount, pid, uts
# and ipc namespaces, already inside its network namespace. It plays what a Debian cloud
# image does at boot before sshd answers: private filesystems, hostname, cloud-init's
# default user, then sshd. It stays alive as the host's only "service manager" child of
# tini, so that tini (and with it every process of the host) lives until the rig kills it.
#
# usage: host-init.sh HOST_DIR HOSTNAME PATH...
#   HOST_DIR/fs/<path> is bind-mounted on /<path> for each PATH;
#   HOST_DIR/bin/service replaces /usr/sbin/service (see host-service.sh);
#   HOST_DIR/admin.pub is the authorized key of user admin.
set -eu

host_dir=$1
host_name=$2
shift 2

# unshare already made every mount private; say it again so a changed default in
# util-linux can never make a host's bind mounts show up on the machine.
mount --make-rprivate /

# Relative sources from here on: the host dir lies under the machine's /tmp (or wherever
# TMPDIR points), which the first mounts may cover; the working directory keeps pointing
# into the machine's tree.
cd "$host_dir"

for p in "$@"; do
  mount --bind "fs/$p" "/$p"
done

# Files bind-mounted onto the shared /usr must not be writable through the mount.
mount --bind bin/service /usr/sbin/service
mount -o remount,bind,ro /usr/sbin/service

# POSIX shared memory (gunicorn, postgres clients) is per host on a real machine.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm

hostname "$host_name"

# cloud-init's default user on Debian images: groups as in its Debian defaults, the ones
# that exist; password locked; sudo rights come from /etc/sudoers.d/90-cloud-init-users.
groups=""
for g in adm audio cdrom dialout dip floppy netdev plugdev sudo video; do
  if getent group "$g" >/dev/null; then
    groups="${groups:+$groups,}$g"
  fi
done
useradd --create-home --home-dir /home/admin --shell /bin/bash --user-group --groups "$groups" admin
install -d -m 0700 -o admin -g admin /home/admin/.ssh
install -m 0600 -o admin -g admin admin.pub /home/admin/.ssh/authorized_keys
cd /

/usr/sbin/sshd -t
# A subshell that exits at once reparents sshd to tini, which reaps it if it ever dies
# (`service ssh restart` replaces it with a daemonised one, also reparented to tini).
(/usr/sbin/sshd -D -e >>/var/log/sshd.log 2>&1 &)

echo "host-init: ready"
exec sleep infinity
