#!/usr/bin/env bash
# greenlight status (npm run status): what this host serves, read from the host itself, as one
# JSON object on stdout. Runs as deploy, read-only: each slot's release (its symlink), its
# gunicorn (supervisorctl status, which deploy's sudoers allows for its own slots) and its
# health path's answer through nginx; disk use of /srv; the newest backup this host recorded
# (step.sh's record of the backup step); the greenlight script versions installed.
# components/ops.ts sends this script with the command (bash -c), so it needs no install.
#
# Arguments: APP HEALTH_PATH BLUE_PORT GREEN_PORT
set -Eeuo pipefail
export LC_ALL=C.UTF-8
app=$1 health=$2 blue_port=$3 green_port=$4
[[ $app =~ ^[a-z][a-z0-9]{1,15}$ ]] || {
  echo "greenlight status: not an app name: $app" >&2
  exit 2
}
root=/srv/$app
[[ -d $root ]] || {
  echo "greenlight status: $root does not exist on $(hostname): the host is not bootstrapped" >&2
  exit 1
}

slot_json() {
  local slot=$1 port=$2 target release="" process code body
  if target=$(readlink -- "$root/$slot" 2>/dev/null); then release=${target#releases/}; fi
  process=$(sudo -n /usr/bin/supervisorctl status "$app-$slot" 2>/dev/null | awk '{ print $2 }' || true)
  body=$(curl -sS --max-time 5 -o - -w '\n%{http_code}' "http://127.0.0.1:$port$health" 2>/dev/null || true)
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  python3 -c '
import json, sys
release, process, code, body = sys.argv[1:5]
code = int(code) if code.isdigit() else 0
print(json.dumps({"release": release or None, "process": process or "unknown",
                  "health": {"code": code, "body": body[:200]} if code else None}))
' "$release" "$process" "$code" "$body"
}

blue=$(slot_json blue "$blue_port")
green=$(slot_json green "$green_port")
read -r size used avail percent mount < <(df -Pk -- "$root" | awk 'NR == 2 { sub("%", "", $5); print $2, $3, $4, $5, $6 }')
backup=$(find "$root/steps" -maxdepth 1 -name '*.backup.json' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2- || true)
scripts=$(find /srv/greenlight-scripts -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort || true)
python3 -c '
import json, os, sys
blue, green, size, used, avail, percent, mount, backup, scripts = sys.argv[1:10]
last = None
if backup:
    try:
        with open(backup) as f:
            last = json.load(f)
        last["release"] = os.path.basename(backup).split(".")[1]
    except (OSError, ValueError, IndexError):
        last = {"unreadable": backup}
print(json.dumps({
    "hostname": os.uname().nodename,
    "slots": {"blue": json.loads(blue), "green": json.loads(green)},
    "disk": {"mount": mount, "sizeKb": int(size), "usedKb": int(used), "availKb": int(avail), "usedPercent": int(percent)},
    "lastBackup": last,
    "scripts": [s for s in scripts.split("\n") if s],
}))
' "$blue" "$green" "$size" "$used" "$avail" "$percent" "$mount" "$backup" "$scripts"
