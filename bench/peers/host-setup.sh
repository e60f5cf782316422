#!/usr/bin/env bash
# What a team provisions once, before its first deploy with a peer tool (in Ansible usually a
# "provision" play, for Capistrano by hand or by Ansible): the app's root owned by deploy, a
# supervisor program running gunicorn from `current`, an nginx server in front of it, and sudo
# for the restart. Runs as root on the bench's rig host, after greenlight's bootstrap (which
# installed nginx, supervisor, the deploy user). Idempotent.
#
#   host-setup.sh TOOL NGINX_PORT GUNICORN_PORT     e.g. host-setup.sh capistrano 8004 9004
set -Eeuo pipefail

tool=$1
port=$2
app_port=$3
[[ $tool =~ ^[a-z]+$ && $port =~ ^[0-9]{4,5}$ && $app_port =~ ^[0-9]{4,5}$ ]] || {
  echo "usage: host-setup.sh TOOL NGINX_PORT GUNICORN_PORT" >&2
  exit 2
}
root=/srv/$tool-site
program=$tool-site

install -d -o deploy -g deploy -m 0755 "$root" "$root/shared" "$root/releases"

cat >"/etc/supervisor/conf.d/$program.conf" <<CONF
[program:$program]
command=$root/current/venv/bin/gunicorn --workers 2 --bind 127.0.0.1:$app_port --access-logfile - greenlight_site.wsgi:application
directory=$root/current
user=deploy
autostart=false
autorestart=true
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/var/log/$program.log
stdout_logfile_maxbytes=0
environment=HOME="/home/deploy"
CONF
supervisorctl reread >&2
supervisorctl update >&2

cat >"/etc/nginx/sites-available/$program.conf" <<CONF
server {
    listen $port;
    server_name _;
    client_max_body_size 25m;
    location /static/ {
        alias $root/current/staticfiles/;
        expires 7d;
    }
    location /media/ {
        alias $root/shared/media/;
    }
    location / {
        proxy_pass http://127.0.0.1:$app_port;
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_redirect off;
    }
}
CONF
ln -sfn "/etc/nginx/sites-available/$program.conf" "/etc/nginx/sites-enabled/$program.conf"
nginx -t -q
service nginx reload >&2

sudoers=/etc/sudoers.d/$program
printf 'deploy ALL=(root) NOPASSWD: /usr/bin/supervisorctl restart %s\n' "$program" >"$sudoers.tmp"
chmod 0440 "$sudoers.tmp"
visudo -cqf "$sudoers.tmp"
mv -f "$sudoers.tmp" "$sudoers"
echo "$tool: $root, supervisor $program, nginx :$port -> gunicorn 127.0.0.1:$app_port" >&2
