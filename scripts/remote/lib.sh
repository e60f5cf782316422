#!/usr/bin/env bash
# shellcheck shell=bash
# greenlight: helpers shared by every remote script. The program sends this file, byte for
# byte, in front of each script (components/remote.ts); run from a checkout, a script
# sources it instead. Values arrive as GL_* environment assignments in the command text:
# none of them is a secret. Secrets come only from SSM (read with the instance role) or
# shared/.env, travel through pipes, and are never printed.
set -Eeuo pipefail
umask 027
export LC_ALL=C.UTF-8

GL_STEP=${GL_STEP:-greenlight}
GL_LOCK_TIMEOUT=${GL_LOCK_TIMEOUT:-900}

log() { printf '%s greenlight %s: %s\n' "$(date -u +%H:%M:%S)" "$GL_STEP" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
trap 'log "failed: line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# Temporary directories are removed however the script ends.
GL_TMP_DIRS=()
remove_tmp_dirs() {
  local d
  for d in "${GL_TMP_DIRS[@]}"; do rm -rf -- "$d"; done
}
trap remove_tmp_dirs EXIT

# tmp_dir VAR LABEL [PARENT]: creates a private (0700) directory and stores its path in VAR.
tmp_dir() {
  local d
  d=$(mktemp -d "${3:-${TMPDIR:-/var/tmp}}/.greenlight-$2.XXXXXX")
  GL_TMP_DIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

# require NAME...: every named variable is set and not empty.
require() {
  local name
  for name in "$@"; do
    [[ -n ${!name:-} ]] || die "missing value $name"
  done
}

# check NAME REGEX WHAT: the variable's value matches the (anchored) regex.
check() {
  local name=$1 re=$2 what=$3
  [[ ${!name} =~ $re ]] || die "$name is not $what"
}

check_app() { check GL_APP '^[a-z][a-z0-9]{1,15}$' "an app name"; }
check_slot() { check GL_SLOT '^(blue|green)$' "blue or green"; }
check_release() { check GL_RELEASE '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' "a release id (letters, digits, . _ -)"; }
check_key() { # NAME: an S3 key without traversal or odd characters
  check "$1" '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$' "an S3 key"
  [[ ${!1} != *..* ]] || die "$1 contains .."
}

app_paths() {
  APP_ROOT=/srv/$GL_APP
  # shellcheck disable=SC2034 # used by the scripts that follow this file
  RELEASES=$APP_ROOT/releases
  # shellcheck disable=SC2034
  SHARED=$APP_ROOT/shared
  [[ -f $APP_ROOT/.bootstrap ]] || die "$APP_ROOT is not bootstrapped on $(hostname): the bootstrap step must run first"
}

# One deploy at a time per app on a host: a second one waits for the lock (bounded).
lock() {
  exec 9<>"$APP_ROOT/.lock" || die "cannot open $APP_ROOT/.lock"
  if ! flock -n 9; then
    log "another greenlight step holds $APP_ROOT/.lock; waiting up to ${GL_LOCK_TIMEOUT}s"
    flock -w "$GL_LOCK_TIMEOUT" 9 || die "timed out waiting for $APP_ROOT/.lock"
  fi
}

aws_cli() {
  local args=(--region "$GL_REGION")
  # GL_AWS_ENDPOINT_URL points the CLI at a stand-in (tests, LocalStack); unset on AWS.
  if [[ -n ${GL_AWS_ENDPOINT_URL:-} ]]; then args+=(--endpoint-url "$GL_AWS_ENDPOINT_URL"); fi
  aws "${args[@]}" "$@"
}

# Prints the environment's parameters as KEY=VALUE lines (the .env format): only names of
# the form UPPER_SNAKE directly under the path, values on one line. For pipes only.
parameters_as_env() {
  aws_cli ssm get-parameters-by-path --path "$GL_PARAMETER_PATH" --recursive --with-decryption --output json |
    python3 -c '
import json, re, sys
prefix = sys.argv[1]
for p in sorted(json.load(sys.stdin)["Parameters"], key=lambda p: p["Name"]):
    full, value = p["Name"], p["Value"]
    name = full[len(prefix):]
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
        print(f"greenlight: ignoring parameter {full}", file=sys.stderr)
        continue
    if "\n" in value or "\r" in value:
        sys.exit(f"greenlight: parameter {full} contains a line break")
    print(f"{name}={value}")
' "$GL_PARAMETER_PATH"
}

# Sets PGHOST PGPORT PGDATABASE PGUSER PGSSLMODE and PGPASSFILE (a 0600 file in $1) from SSM,
# so pg_dump/pg_restore find the password without it ever being an argument or variable.
db_connection() {
  local dir=$1 fields
  fields=$(parameters_as_env | python3 -c '
import sys
env = dict(line.rstrip("\n").split("=", 1) for line in sys.stdin if "=" in line)
missing = [k for k in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD") if not env.get(k)]
if missing:
    sys.exit("greenlight: missing parameters " + " ".join(missing))
def pgpass(v):
    return v.replace("\\", "\\\\").replace(":", "\\:")
with open(sys.argv[1], "w") as f:
    f.write(":".join(pgpass(env[k]) for k in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")) + "\n")
print(env["DB_HOST"], env["DB_PORT"], env["DB_NAME"], env["DB_USER"])
' "$dir/pgpass")
  chmod 600 "$dir/pgpass"
  read -r PGHOST PGPORT PGDATABASE PGUSER <<<"$fields"
  export PGHOST PGPORT PGDATABASE PGUSER
  export PGPASSFILE=$dir/pgpass PGSSLMODE=${GL_PGSSLMODE:-require} PGCONNECT_TIMEOUT=15
}

# take_backup LABEL: pg_dump of the whole database to the backup bucket, verified with
# pg_restore --list before upload. Prints a JSON summary (key, size, sha256) on stdout.
take_backup() {
  local label=$1 work key size sum entries list_job
  require GL_BACKUP_BUCKET GL_PARAMETER_PATH GL_REGION
  work=""
  tmp_dir work backup
  db_connection "$work"
  key="db/$(date -u +%Y%m%dT%H%M%SZ)-$label.dump"
  log "pg_dump of $PGDATABASE on $PGHOST"
  pg_dump --format=custom --no-password --file="$work/backup.dump"
  # The archive must read back; an empty database (before the first migration) has no entries.
  # pg_restore reads the table of contents while the dump is hashed (the hash is what the
  # upload waits for). openssl uses the CPU's SHA instructions: several times sha256sum's speed
  # (openssl comes with ca-certificates, which the bootstrap installs).
  pg_restore --list "$work/backup.dump" >"$work/toc" &
  list_job=$!
  sum=$(openssl dgst -sha256 -r "$work/backup.dump")
  sum=${sum%% *}
  wait "$list_job" || die "pg_restore cannot read the dump back"
  check sum '^[0-9a-f]{64}$' "a sha256"
  entries=$(grep -vc '^;' "$work/toc" || true)
  size=$(stat -c %s "$work/backup.dump")
  log "verified $entries entries, $size bytes; uploading to s3://$GL_BACKUP_BUCKET/$key"
  aws_cli s3 cp --only-show-errors --metadata "sha256=$sum" "$work/backup.dump" "s3://$GL_BACKUP_BUCKET/$key" >&2
  printf '{"key":"%s","bucket":"%s","size":%s,"sha256":"%s","database":"%s","entries":%s,"takenAt":"%s"}\n' \
    "$key" "$GL_BACKUP_BUCKET" "$size" "$sum" "$PGDATABASE" "$entries" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}

# manifest FIELD RELEASE_DIR: a field of the release's manifest.json, NUL-separated when a list.
manifest() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[2] + "/manifest.json"))[sys.argv[1]]
sys.stdout.write("\0".join(v) + "\0" if isinstance(v, list) else str(v))
' "$1" "$2"
}

# as_app DIR ARGV...: runs a release's command as the app user, in DIR, with the release's
# venv python standing in for "python" (sudoers allows exactly that python).
as_app() {
  local dir=$1
  shift
  local argv=("$@")
  [[ ${argv[0]} == python ]] && argv[0]=$dir/venv/bin/python
  # umask 002 (with sudoers' matching default): what the app writes in the release stays
  # group-writable for deploy's cleanup.
  (cd "$dir" && umask 002 && sudo -n -u app -- "${argv[@]}")
}

# render_env: shared/.env from the environment's SSM parameters. Written as the app user into
# the file the bootstrap created (app's, 0600), so deploy never holds it. Not atomic, but only
# read when a process starts, and those start under the lock (or reload gracefully, see
# settings.sh).
render_env() {
  parameters_as_env | sudo -n -u app /usr/bin/tee "$SHARED/.env" >/dev/null
  log "rendered shared/.env from $GL_PARAMETER_PATH"
}
