#!/usr/bin/env bash
# greenlight bootstrap: prepares a Debian 12 host for both slots of one app. Runs as root
# (the admin user through sudo), host after host, from the copy of scripts/remote the program
# puts in /home/admin/.greenlight/<scripts-id>/remote (remote.CopyToRemote). First it installs
# that copy, checked against its content address, root-owned into
# /srv/greenlight-scripts/<scripts-id>/, where every other step runs from. Then, when this
# script or its values changed since the host was last prepared, the rest. Idempotent: it
# installs only missing packages, rewrites a file only when its content changes, and reloads
# (never restarts) what serves traffic.
#
# Values: GL_APP GL_DEPLOY_KEY GL_VPC_CIDR GL_BLUE_PORT GL_GREEN_PORT GL_PG_MAJOR GL_HEALTH_PATH
#         GL_BOOTSTRAP_ID GL_SCRIPTS_ID
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=bootstrap

require GL_APP GL_DEPLOY_KEY GL_VPC_CIDR GL_BLUE_PORT GL_GREEN_PORT GL_PG_MAJOR GL_HEALTH_PATH GL_BOOTSTRAP_ID \
  GL_SCRIPTS_ID
check_app
check GL_DEPLOY_KEY '^ssh-ed25519 [A-Za-z0-9+/]+={0,2}( [[:print:]]*)?$' "an ssh-ed25519 public key"
check GL_VPC_CIDR '^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$' "an IPv4 CIDR"
check GL_BLUE_PORT '^[0-9]{4,5}$' "a port"
check GL_GREEN_PORT '^[0-9]{4,5}$' "a port"
check GL_PG_MAJOR '^[0-9]{2}$' "a PostgreSQL major version"
check GL_HEALTH_PATH '^/[A-Za-z0-9/._-]*$' "an absolute path"
check GL_BOOTSTRAP_ID '^[A-Za-z0-9]{8,64}$' "a script id"
check GL_SCRIPTS_ID '^[0-9a-f]{16}$' "a scripts id"
[[ $(id -u) -eq 0 ]] || die "the bootstrap must run as root"

APP=$GL_APP
ROOT=/srv/$APP
# What the maintenance page's Retry-After says, in seconds.
MAINTENANCE_RETRY_AFTER=30
# How long a worker's warm shutdown may take (its running tasks finish) before it is killed.
WORKER_STOP_SECONDS=90

# --- the scripts: root-owned, content-addressed ----------------------------------------------
LIB_ROOT=/srv/greenlight-scripts
source_dir=$(cd "${BASH_SOURCE[0]%/*}" && pwd -P)
scripts=$LIB_ROOT/$GL_SCRIPTS_ID
install -d -o root -g root -m 0755 "$LIB_ROOT"
if [[ ! -f $scripts/.installed ]]; then
  have=$(scripts_id "$source_dir")
  [[ $have == "$GL_SCRIPTS_ID" ]] ||
    die "the scripts in $source_dir are version $have, not $GL_SCRIPTS_ID: the copy is incomplete or stale"
  new=""
  tmp_dir new scripts "$LIB_ROOT"
  cp -- "$source_dir"/*.sh "$source_dir"/*.py "$new/"
  chown -R root:root "$new"
  chmod 0644 "$new"/*.sh "$new"/*.py
  chmod 0755 "$new"
  [[ $(scripts_id "$new") == "$GL_SCRIPTS_ID" ]] || die "the scripts changed while they were installed"
  touch "$new/.installed"
  rm -rf -- "$scripts"
  mv -T "$new" "$scripts"
  log "installed scripts $GL_SCRIPTS_ID in $scripts"
fi
# Older versions go, but the four newest (a step of an update that is under way may still use one).
prune_versions() { # DIR KEEP: removes the scripts-id directories in DIR but the KEEP newest
  find "$1" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
    ! -name "$GL_SCRIPTS_ID" -printf '%T@ %p\n' | sort -rn | tail -n +"$(($2 + 1))" | cut -d' ' -f2- |
    xargs -r rm -rf --
}
prune_versions "$LIB_ROOT" 4
# The copies the program made for the admin user: this one is installed, earlier ones are done.
if [[ $source_dir == */.greenlight/"$GL_SCRIPTS_ID"/remote ]]; then prune_versions "${source_dir%/*/*}" 0; fi

# A host prepared by this bootstrap with these values needs nothing more: a change of another
# step's script (a new scripts id) only installs the scripts.
prepared="$GL_BOOTSTRAP_ID $(printf '%s\n' "$GL_APP" "$GL_DEPLOY_KEY" "$GL_VPC_CIDR" "$GL_BLUE_PORT" \
  "$GL_GREEN_PORT" "$GL_PG_MAJOR" "$GL_HEALTH_PATH" | sha256sum | cut -c1-16)"
if [[ -f $ROOT/.bootstrap && $(<"$ROOT/.bootstrap") == "$prepared" ]]; then
  log "host already prepared by bootstrap $GL_BOOTSTRAP_ID with these values; scripts $GL_SCRIPTS_ID installed"
  printf '{"host":"%s","app":"%s","bootstrap":"%s","scripts":"%s","prepared":false}\n' \
    "$(hostname)" "$APP" "$GL_BOOTSTRAP_ID" "$GL_SCRIPTS_ID"
  exit 0
fi

# --- packages -----------------------------------------------------------------------------
packages=(nginx supervisor python3 python3-venv python3-boto3 postgresql-client curl sudo
  unattended-upgrades logrotate ca-certificates iproute2)
missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  log "packages present"
fi
pg_dump_major=$(pg_dump --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
((pg_dump_major >= GL_PG_MAJOR)) ||
  die "pg_dump $pg_dump_major is older than the database (PostgreSQL $GL_PG_MAJOR): backups would fail"

# --- users ----------------------------------------------------------------------------------
# app: runs gunicorn, owns uploads and the .env; no login. deploy: owns the code, runs every
# release step over SSH, may act as app and restart its own slots, nothing else.
getent group app >/dev/null || groupadd --system app
getent passwd app >/dev/null ||
  useradd --system --gid app --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app
getent passwd deploy >/dev/null || useradd --create-home --user-group --shell /bin/bash deploy
# adm: Debian's group for reading logs (nginx's, for npm run logs); app: the app's logs and files.
usermod -a -G app,adm deploy
install -d -o deploy -g deploy -m 0700 /home/deploy/.ssh

# write_file DEST MODE OWNER:GROUP < content: replaces DEST only when the content differs.
# Returns 0 when it wrote, 1 when DEST was already up to date.
write_file() {
  local dest=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest" && [[ $(stat -c '%a %U:%G' "$dest") == "${mode#0} $owner" ]]; then
    rm -f "$tmp"
    return 1
  fi
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$dest"
  log "wrote $dest"
}

printf '%s\n' "$GL_DEPLOY_KEY" | write_file /home/deploy/.ssh/authorized_keys 0600 deploy:deploy || true

# --- directories ----------------------------------------------------------------------------
install -d -o deploy -g deploy -m 0755 "$ROOT" "$ROOT/releases" "$ROOT/shared" "$ROOT/shared/venvs" \
  "$ROOT/shared/pip-cache"
install -d -o app -g app -m 0755 "$ROOT/shared/media"
# Beat's schedule (its last run of each entry), kept across releases: one per environment.
install -d -o app -g app -m 0750 "$ROOT/shared/beat"
# Each step's log and recorded result (step.sh): deploy's alone, as migrate's log may carry
# whatever the app prints.
install -d -o deploy -g deploy -m 0700 "$ROOT/steps" "$ROOT/steps/log"
# The app's settings, rendered from SSM by each fetch: readable and writable by the app only.
[[ -e $ROOT/shared/.env ]] || install -o app -g app -m 0600 /dev/null "$ROOT/shared/.env"
# Where the app user writes a new .env (0600) for deploy to rename over the old one (lib.sh).
install -d -o deploy -g app -m 2770 "$ROOT/shared/.settings"
# gunicorn (app) creates its sockets here; nginx (www-data) connects: setgid keeps the group.
install -d -o app -g www-data -m 2750 "$ROOT/run"
install -d -o app -g app -m 0750 "/var/log/$APP"
[[ -e $ROOT/.lock ]] || install -o deploy -g deploy -m 0640 /dev/null "$ROOT/.lock"

# --- sudo: exactly what the release steps need ------------------------------------------------
slots_cmds=""
for slot in blue green; do
  for verb in start stop restart status update "signal HUP"; do
    slots_cmds+="${slots_cmds:+, }/usr/bin/supervisorctl $verb $APP-$slot"
  done
done
# The background processes (workers.sh): started, stopped and asked, nothing else.
for program in worker beat; do
  for verb in start stop status; do
    slots_cmds+=", /usr/bin/supervisorctl $verb $APP-$program"
  done
done
sudoers=$(mktemp)
cat >"$sudoers" <<EOF
# greenlight ($APP): the deploy user restarts its own slots, writes the app's .env and runs
# the app's commands (migrate, collectstatic) as the app user with a release's python, and
# stops what such a command left running when its step hits its time limit (a process group).
# Files the app writes into a release (collectstatic) stay group-writable, so cleanup (deploy,
# in group app) can remove them.
Defaults>app umask=0002
deploy ALL=(root) NOPASSWD: $slots_cmds
deploy ALL=(app) NOPASSWD: /usr/bin/tee $ROOT/shared/.settings/env.new, $ROOT/releases/*/venv/bin/python, \\
  /usr/bin/kill -TERM -- -[0-9]*, /usr/bin/kill -KILL -- -[0-9]*
EOF
visudo -cqf "$sudoers" || die "generated sudoers does not parse"
write_file "/etc/sudoers.d/greenlight-$APP" 0440 root:root <"$sudoers" || true
rm -f "$sudoers"

# --- services ---------------------------------------------------------------------------------
# systemd on EC2; SysV scripts where there is no systemd (containers, the local test hosts).
service_do() {
  if [[ -d /run/systemd/system ]]; then systemctl "$2" "$1"; else service "$1" "$2" >&2; fi
}
ensure_running() {
  if [[ -d /run/systemd/system ]]; then
    systemctl enable --now "$1" >&2
  elif ! service "$1" status >/dev/null 2>&1; then
    service "$1" start >&2
  fi
}

# --- supervisor: one gunicorn per slot. The program lines never change with a release (the
# release's own gunicorn.conf.py carries its settings), so a re-run restarts nothing.
# startsecs=0: `supervisorctl start|restart` returns once gunicorn is spawned instead of waiting
# a fixed 2 s; activation gates on the slot's health path answering with the release id, and
# fails as soon as the gunicorn it started exits (activate.sh). autorestart still brings back a
# gunicorn that exits later.
supervisor_conf() {
  local slot
  for slot in blue green; do
    cat <<EOF
[program:$APP-$slot]
command=$ROOT/$slot/venv/bin/gunicorn --config $ROOT/$slot/gunicorn.conf.py --bind unix:$ROOT/run/$slot.sock
directory=$ROOT/$slot
user=app
umask=0007
autostart=true
autorestart=true
startsecs=0
startretries=3
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/var/log/$APP/$slot.log
stdout_logfile_maxbytes=0
environment=PYTHONDONTWRITEBYTECODE="1",HOME="/nonexistent"

EOF
  done
}
# The background processes (greenlight.json's worker and beat) run the release that
# $ROOT/background points at (workers.sh moves it after each cutover and rollback). Started only
# by workers.sh, and after a reboot by $APP-background-boot from workers.sh's record
# (autostart=false): beat must run on one host, which only the release graph knows.
# TERM is Celery's warm shutdown (running tasks finish); stopwaitsecs is the limit, after which
# the group is killed and its unacknowledged tasks go back to the queue (acks_late).
background_conf() {
  local program wait
  for program in worker beat; do
    wait=$WORKER_STOP_SECONDS
    [[ $program == beat ]] && wait=30
    cat <<EOF
[program:$APP-$program]
command=$ROOT/bin/background $program
directory=$ROOT
user=app
umask=0007
autostart=false
autorestart=true
startsecs=3
startretries=3
stopsignal=TERM
stopwaitsecs=$wait
stopasgroup=false
killasgroup=true
redirect_stderr=true
stdout_logfile=/var/log/$APP/$program.log
stdout_logfile_maxbytes=0
environment=PYTHONDONTWRITEBYTECODE="1",HOME="/nonexistent"

EOF
  done
}
# After a reboot (supervisor starting), the worker and beat come back only as the last
# workers-start left them: <app>-background-boot runs background-boot.sh once, as deploy, which
# starts what /srv/<app>/background.json (written by workers.sh) names, and nothing without it.
background_boot_conf() {
  cat <<EOF
[program:$APP-background-boot]
command=$ROOT/bin/background-boot $APP
directory=$ROOT
user=deploy
autostart=true
autorestart=false
startsecs=0
startretries=0
redirect_stderr=true
stdout_logfile=/var/log/$APP/background-boot.log
stdout_logfile_maxbytes=0
environment=HOME="/home/deploy"

EOF
}
# What the programs run: the declared argv of the release's manifest, with its venv's python or
# console script, from the release's directory (resolved once: a later move of the link leaves a
# running process on its release); beat with its schedule in shared/beat.
background_runner() {
  cat <<EOF
#!/bin/bash
# greenlight ($APP): runs greenlight.json's "worker" or "beat" of the release $ROOT/background
# points at (written by the bootstrap; started by supervisor, moved by workers.sh).
set -euo pipefail
role=\$1
[[ \$role == worker || \$role == beat ]] || { echo "usage: background worker|beat" >&2; exit 2; }
dir=\$(readlink -e $ROOT/background) || { echo "greenlight: no release for the \$role yet" >&2; exit 1; }
cd "\$dir"
mapfile -d '' argv < <(/usr/bin/python3 -c '
import json, sys
v = json.load(open("manifest.json")).get(sys.argv[1]) or []
sys.stdout.write("".join(a + "\\0" for a in v))
' "\$role")
((\${#argv[@]})) || { echo "greenlight: release \$dir declares no \$role" >&2; exit 1; }
argv[0]=\$dir/venv/bin/\${argv[0]}
if [[ \$role == beat ]]; then argv+=("--schedule=$ROOT/shared/beat/celerybeat-schedule"); fi
exec "\${argv[@]}"
EOF
}
install -d -o root -g root -m 0755 "$ROOT/bin"
background_runner | write_file "$ROOT/bin/background" 0755 root:root || true
write_file "$ROOT/bin/background-boot" 0755 root:root <"$scripts/background-boot.sh" || true

ensure_running supervisor
{
  supervisor_conf
  background_conf
  background_boot_conf
} | write_file "/etc/supervisor/conf.d/greenlight-$APP.conf" 0644 root:root || true
# A changed program is applied at once only to a slot that is not running: `supervisorctl
# update` would restart a running one, and this host cannot know which colour the load balancer
# serves. A running slot takes its new program at its next activation (activate.sh updates it
# before it restarts it).
mapfile -t reread < <(supervisorctl reread 2>&1)
for line in "${reread[@]}"; do
  [[ $line =~ ^($APP-(blue|green|worker|beat|background-boot)):\ (changed|available)$ ]] || continue
  program=${BASH_REMATCH[1]}
  if [[ ${BASH_REMATCH[3]} == changed ]] && supervisorctl status "$program" 2>/dev/null | grep -q RUNNING; then
    log "$program is running: its new supervisor program applies at its next activation, not now"
  else
    supervisorctl update "$program" >&2
    log "supervisor program $program ${BASH_REMATCH[3]}: applied"
  fi
done

# --- nginx: one server per slot port, static from the slot's release, media from shared/media
# when it is there, else from the app (a site whose uploads are in the media bucket serves them).
# X-Forwarded-Proto is passed on only from the VPC (the ALB) and loopback.
# Maintenance mode (maintenance.sh): while $ROOT/maintenance exists, nginx answers every request
# but the health path itself: 503, Retry-After and a short page. It looks for the file on each
# request, so turning the mode on or off needs no reload. The health path still reaches the
# slot, so the load balancer keeps the targets in service (with none healthy it would answer
# its own 503, without Retry-After, and when maintenance ended each target would wait out the
# healthy threshold again), and activation's gate still sees the release it starts.
nginx_conf() {
  cat <<EOF
# greenlight ($APP): the ALB forwards each colour to its slot port.
geo \$greenlight_${APP}_trusted {
    default 0;
    127.0.0.1/32 1;
    $GL_VPC_CIDR 1;
}
map "\$greenlight_${APP}_trusted:\$http_x_forwarded_proto" \$greenlight_${APP}_proto {
    default \$scheme;
    "~^1:(?<proto>https?)\$" \$proto;
}
EOF
  local slot port proxy
  for slot in blue green; do
    port=$GL_BLUE_PORT
    [[ $slot == green ]] && port=$GL_GREEN_PORT
    proxy="proxy_pass http://${APP}_$slot;
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$greenlight_${APP}_proto;
        proxy_redirect off;
        proxy_read_timeout 60s;"
    cat <<EOF

upstream ${APP}_$slot {
    server unix:$ROOT/run/$slot.sock fail_timeout=0;
}
server {
    listen $port;
    server_name _;
    client_max_body_size 25m;
    access_log /var/log/nginx/$APP-$slot.access.log;
    error_page 503 @greenlight_maintenance;
    location @greenlight_maintenance {
        add_header Retry-After $MAINTENANCE_RETRY_AFTER always;
        add_header Cache-Control "no-store" always;
        default_type text/html;
        return 503 '<!doctype html><meta charset="utf-8"><title>Down for maintenance</title><h1>Down for maintenance</h1><p>A new version of this site is being put in place. Please try again in a minute.</p>\n';
    }
    location = $GL_HEALTH_PATH {
        $proxy
    }
    location /static/ {
        if (-f $ROOT/maintenance) { return 503; }
        alias $ROOT/$slot/staticfiles/;
        expires 7d;
    }
    location /media/ {
        if (-f $ROOT/maintenance) { return 503; }
        root $ROOT/shared;
        try_files \$uri @${APP}_${slot}_app;
    }
    location @${APP}_${slot}_app {
        if (-f $ROOT/maintenance) { return 503; }
        $proxy
    }
    location / {
        if (-f $ROOT/maintenance) { return 503; }
        $proxy
    }
}
EOF
  done
}
# Releases fetched before static files moved to <release>/staticfiles (their STATIC_ROOT was
# <release>/static) are served through a link, so a rollback to one still has its files.
for r in "$ROOT"/releases/*/; do
  r=${r%/}
  if [[ -f $r/.artifact-sha256 && -d $r/static && ! -e $r/staticfiles && ! -L $r/staticfiles ]]; then
    ln -s static "$r/staticfiles"
    chown -h deploy:deploy "$r/staticfiles"
    log "linked ${r#"$ROOT"/}/staticfiles to its static/ (collected before staticfiles)"
  fi
done
nginx_changed=0
nginx_conf | write_file "/etc/nginx/sites-available/greenlight-$APP.conf" 0644 root:root && nginx_changed=1
ln -sfn "/etc/nginx/sites-available/greenlight-$APP.conf" "/etc/nginx/sites-enabled/greenlight-$APP.conf"
if [[ -e /etc/nginx/sites-enabled/default ]]; then
  rm -f /etc/nginx/sites-enabled/default
  nginx_changed=1
fi
# The slots' access logs as Debian's logrotate makes nginx's logs (www-data:adm 0640), before
# nginx creates them with whatever umask started it: deploy reads them (group adm, npm run logs).
for slot in blue green; do
  f=/var/log/nginx/$APP-$slot.access.log
  [[ -e $f ]] || install -o www-data -g adm -m 0640 /dev/null "$f"
done
nginx -t -q || die "nginx rejects its configuration"
ensure_running nginx
if ((nginx_changed)); then service_do nginx reload; fi

# --- sshd: keys only, and only the host key Pulumi generated (the one every connection pins).
sshd_conf() {
  cat <<'EOF'
# greenlight: key-only SSH with the generated host key that deploy connections pin.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PubkeyAuthentication yes
X11Forwarding no
EOF
}
[[ -s /etc/ssh/ssh_host_ed25519_key ]] || die "/etc/ssh/ssh_host_ed25519_key is missing: user data installs it"
if sshd_conf | write_file /etc/ssh/sshd_config.d/10-greenlight.conf 0644 root:root; then
  sshd -t || die "sshd rejects its configuration"
  service_do ssh reload
fi

# --- unattended security upgrades and log rotation ------------------------------------------
write_file /etc/apt/apt.conf.d/20auto-upgrades 0644 root:root <<'EOF' || true
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
EOF
write_file "/etc/logrotate.d/greenlight-$APP" 0644 root:root <<EOF || true
/var/log/$APP/*.log {
    daily
    rotate 14
    compress
    delaycompress
    missingok
    notifempty
    copytruncate
    su app app
}
EOF

printf '%s\n' "$prepared" | write_file "$ROOT/.bootstrap" 0644 root:root || true
log "host ready for $APP (bootstrap $GL_BOOTSTRAP_ID, scripts $GL_SCRIPTS_ID)"
printf '{"host":"%s","app":"%s","bootstrap":"%s","scripts":"%s","prepared":true}\n' \
  "$(hostname)" "$APP" "$GL_BOOTSTRAP_ID" "$GL_SCRIPTS_ID"
