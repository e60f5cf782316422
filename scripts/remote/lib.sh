#!/usr/bin/env bash
# shellcheck shell=bash
# greenlight: helpers shared by every remote script, which sources this file from its own
# directory: /srv/greenlight-scripts/<scripts-id>/ on a host (installed by the bootstrap),
# or a checkout. step.sh runs each step and hands it its values (GL_* variables) from the
# command line: none of them is a secret. Secrets come only from SSM (read with the instance
# role) or shared/.env, travel through pipes, and are never printed.
set -Eeuo pipefail
umask 027
export LC_ALL=C.UTF-8

GL_STEP=${GL_STEP:-greenlight}
GL_LOCK_TIMEOUT=${GL_LOCK_TIMEOUT:-900}

# Log lines go to the step's log on the host (step.sh); their millisecond stamps say where a
# step's time goes (bench/).
log() { printf '%s greenlight %s: %s\n' "$(date -u +%H:%M:%S.%3N)" "$GL_STEP" "$*" >&2; }
die() {
  # The script's own work files go first (in the script's main shell only: a background job's
  # copy of the list names its parent's files): on a full disk they are what fills it, and the
  # error below must still reach the log.
  if [[ $BASHPID == "$$" ]]; then remove_tmp_dirs; fi
  log "error: $*"
  exit 1
}
trap 'log "failed: line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# Temporary directories are removed however the script ends.
GL_TMP_DIRS=()
remove_tmp_dirs() {
  local d
  for d in "${GL_TMP_DIRS[@]}"; do rm -rf -- "$d"; done
  GL_TMP_DIRS=()
}
trap remove_tmp_dirs EXIT

# tmp_dir VAR LABEL [PARENT]: creates a private (0700) directory and stores its path in VAR.
tmp_dir() {
  local d
  d=$(mktemp -d "${3:-${TMPDIR:-/var/tmp}}/.greenlight-$2.XXXXXX")
  GL_TMP_DIRS+=("$d")
  printf -v "$1" '%s' "$d"
}

# disk_note DIR: "the disk is full (N MB free on MOUNT): " when the filesystem of DIR has less
# than GL_DISK_LOW_MB (64) left, else nothing. To start an error message (failure summaries
# cut long lines), computed where a step failed, before die frees the step's work files.
disk_note() {
  local free mount
  read -r free mount < <(df -Pk -- "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1024), $6 }') || return 0
  [[ -n ${free:-} ]] || return 0
  if ((free < ${GL_DISK_LOW_MB:-64})); then printf 'the disk is full (%s MB free on %s): ' "$free" "$mount"; fi
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
check_release() {
  check GL_RELEASE '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' "a release id (letters, digits, . _ -)"
  [[ $GL_RELEASE != *..* ]] || die "GL_RELEASE contains .."
}
check_key() { # NAME: an S3 key without traversal or odd characters
  check "$1" '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$' "an S3 key"
  [[ ${!1} != *..* ]] || die "$1 contains .."
}

# scripts_id DIR: the content address of the scripts in DIR (every *.sh, then every *.py, each
# by name): the first 16 hex digits of the sha256 of "<name>\n<size>\n<content>" for each file
# in C order. The program computes the same (components/remote.ts, scriptsId).
scripts_id() {
  local f
  (
    cd "$1" || exit 1
    shopt -s nullglob
    for f in *.sh *.py; do
      printf '%s\n%s\n' "$f" "$(stat -c %s -- "$f")"
      cat -- "$f"
    done | sha256sum | cut -c1-16
  )
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

# Steps that must not run twice for one release (backup, migrate) or one restore request (restore)
# call `once` under the lock.
# step.sh names the step's record in GL_RECORD. If this host recorded the step's result, it
# already ran: a `pulumi up` whose SSH connection dropped while the step went on to finish on
# the host retries the step with the same command, and the retry (which waited for the lock)
# prints the recorded result instead of a second backup or migrate. Such a step records its
# result itself (record) before it ends, so the record exists before the lock is released.
# once WHAT: WHAT says what was done ("for release r3", "for restore db/x.dump").
once() {
  [[ -n ${GL_RECORD:-} && -s $GL_RECORD ]] || return 0
  log "already done $1 on $(hostname) (its result is recorded in $GL_RECORD): not running it again"
  cat -- "$GL_RECORD"
  exit 0
}

# record JSON: writes the step's result to its record (atomically), as step.sh does at the end.
record() {
  [[ -n ${GL_RECORD:-} ]] || return 0
  local new="${GL_RECORD%/*}/.${GL_RECORD##*/}.new"
  printf '%s\n' "$1" >"$new"
  mv -f -- "$new" "$GL_RECORD"
}

# The steps' AWS calls, through boto3 (Debian's python3-boto3): one Python start, about 0.3 s
# where the AWS CLI takes about a second, with the sha256 computed while the bytes stream.
# Credentials come from the instance role; GL_AWS_ENDPOINT_URL points at a stand-in (tests,
# LocalStack) and is unset on AWS. Errors are one line; no value is ever printed but to stdout.
#   aws_py env                    the environment's parameters as .env lines (KEY=VALUE)
#   aws_py get BUCKET KEY FILE    download to FILE; prints its sha256
#   aws_py unpack BUCKET KEY DIR  download a .tar.gz and unpack it into DIR in the same pass
#                                 (regular files and directories only: no link, no absolute
#                                 path, no ..; sane modes, as tarfile's data filter); prints the
#                                 archive's sha256 for the caller to check
#   aws_py put BUCKET KEY FILE|-  upload (multipart when large; - streams stdin); prints the sha256
#                                 and the size of what it sent
#   aws_py rm BUCKET KEY          delete
#   aws_py media-manifest MEDIA BACKUP KEY
#                                 the media bucket's state as a manifest (every key with its
#                                 version id, ETag and size) put to BACKUP/KEY; starts at once
#                                 (imports, clients) and then waits for a line on stdin: "go T0"
#                                 (T0: when the dump began, epoch seconds) or anything else to
#                                 stop. Prints {"key","objects","bytes"}
#   aws_py media-restore MEDIA BACKUP KEY
#                                 the media bucket back to the manifest BACKUP/KEY: each key to
#                                 its version (a server-side copy of it), keys not in it deleted
#                                 (a delete marker: the versions stay). Prints what it changed
# shellcheck disable=SC2016 # Python, not shell
GL_AWS_PY='
import hashlib, json, os, re, sys, tarfile
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

op, args = sys.argv[1], sys.argv[2:]
DATA_FILTER = hasattr(tarfile, "data_filter")
session = boto3.session.Session(region_name=os.environ["GL_REGION"])
options = {
    "endpoint_url": os.environ.get("GL_AWS_ENDPOINT_URL") or None,
    "config": Config(retries={"max_attempts": 3, "mode": "standard"}),
}

def hashing(stream, digest):
    class Reader:  # what s3transfer reads, hashed and counted on the way (non-seekable: in order)
        size = 0
        def read(self, n=-1):
            data = stream.read(n)
            digest.update(data)
            Reader.size += len(data)
            return data
    return Reader()

try:
    if op == "env":
        prefix = os.environ["GL_PARAMETER_PATH"]
        pages = session.client("ssm", **options).get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=True, WithDecryption=True)
        params = sorted((p for page in pages for p in page["Parameters"]), key=lambda p: p["Name"])
        for p in params:
            full, value = p["Name"], p["Value"]
            name = full[len(prefix):]
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                print(f"greenlight: ignoring parameter {full}", file=sys.stderr)
                continue
            if "\n" in value or "\r" in value:
                sys.exit(f"greenlight: parameter {full} contains a line break")
            print(f"{name}={value}")
    elif op == "get":
        bucket, key, path = args
        body = session.client("s3", **options).get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
                f.write(chunk)
        print(digest.hexdigest())
    elif op == "unpack":
        bucket, key, dest = args
        body = session.client("s3", **options).get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        reader = hashing(body, digest)
        with tarfile.open(fileobj=reader, mode="r|gz") as tar:
            for i, member in enumerate(tar):
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts or not (member.isreg() or member.isdir()):
                    sys.exit(f"greenlight: the artifact has a link, an absolute path or .. ({member.name})")
                if i == 0:
                    # package-site writes manifest.json first: its Python must be the one of this host,
                    # or the wheelhouse cannot install; refused before anything else is written.
                    if member.name != "manifest.json" or not member.isreg():
                        sys.exit("greenlight: the artifact does not start with manifest.json: build it again with npm run package-site")
                    data = tar.extractfile(member).read()
                    try:
                        built = json.loads(data).get("python")
                    except ValueError:
                        sys.exit("greenlight: the manifest.json of the artifact is not JSON")
                    host = "%d.%d" % sys.version_info[:2]
                    if built != host:
                        sys.exit(f"greenlight: the wheels of the artifact are for Python {built}, this host runs Python {host}: build it again with npm run package-site")
                    with open(os.path.join(dest, "manifest.json"), "wb") as f:
                        f.write(data)
                    os.chmod(os.path.join(dest, "manifest.json"), 0o644)
                    continue
                # What the tarfile "data" filter keeps (Python >= 3.12; Debian 12 has 3.11.2): no
                # setuid, setgid or sticky bit, nothing group- or world-writable, no mode-000
                # directory; directories 0755, files 0644 or, if the owner could run them, 0755.
                if member.isdir():
                    member.mode = 0o755
                else:
                    member.mode = 0o755 if member.mode & 0o100 else 0o644
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                if DATA_FILTER:
                    tar.extract(member, dest, filter="data")
                else:
                    tar.extract(member, dest)
        while reader.read(1 << 20):  # the rest of the stream (gzip trailer): hash every byte
            pass
        print(digest.hexdigest())
    elif op == "put":
        bucket, key, path = args
        digest = hashlib.sha256()
        source = sys.stdin.buffer if path == "-" else open(path, "rb")
        reader = hashing(source, digest)
        session.client("s3", **options).upload_fileobj(reader, bucket, key)
        print(digest.hexdigest(), reader.size)
    elif op == "rm":
        bucket, key = args
        session.client("s3", **options).delete_object(Bucket=bucket, Key=key)
    elif op == "media-manifest":
        media, backup, key = args
        s3 = session.client("s3", **options)
        go = sys.stdin.readline().split()
        if len(go) != 2 or go[0] != "go":
            sys.exit(0)
        since = float(go[1]) - 1  # LastModified has whole seconds
        objects = []
        current = None
        # Versions come key by key, newest first. A key counts with its newest version; one
        # deleted since the dump began (a delete marker newer than T0) with the version before
        # the marker, as rows of the dump may still name it.
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=media)
        for page in pages:
            entries = [(v, False) for v in page.get("Versions", [])] + [(m, True) for m in page.get("DeleteMarkers", [])]
            entries.sort(key=lambda e: (e[0]["Key"], not e[0]["IsLatest"]))
            for v, marker in entries:
                if v["IsLatest"]:
                    current = (v["Key"], marker and v["LastModified"].timestamp() >= since)
                    if not marker:
                        objects.append({"key": v["Key"], "versionId": v["VersionId"], "etag": v["ETag"].strip(chr(34)), "size": v["Size"]})
                elif current and current[0] == v["Key"] and current[1] and not marker:
                    objects.append({"key": v["Key"], "versionId": v["VersionId"], "etag": v["ETag"].strip(chr(34)), "size": v["Size"]})
                    current = None
        objects.sort(key=lambda o: o["key"])
        body = json.dumps({"bucket": media, "objects": objects}, separators=(",", ":")).encode()
        s3.put_object(Bucket=backup, Key=key, Body=body, ContentType="application/json")
        print(json.dumps({"key": key, "objects": len(objects), "bytes": sum(o["size"] for o in objects)}, separators=(",", ":")))
    elif op == "media-restore":
        media, backup, key = args
        from concurrent.futures import ThreadPoolExecutor
        s3 = session.client("s3", **options)
        wanted = {o["key"]: o for o in json.loads(s3.get_object(Bucket=backup, Key=key)["Body"].read())["objects"]}
        now = {}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=media):
            for v in page.get("Versions", []):
                if v["IsLatest"]:
                    now[v["Key"]] = (v["VersionId"], v["ETag"].strip(chr(34)))
        # Already there: the same version, or a copy of it put back by an earlier restore.
        copy = [o for k, o in wanted.items() if k not in now or o["versionId"] != now[k][0] and o["etag"] != now[k][1]]
        remove = [k for k in now if k not in wanted]
        big = [o["key"] for o in copy if o["size"] > 5 * 1024**3]
        if big:
            sys.exit(f"greenlight: media objects over 5 GB cannot be copied back in one request: {big[:3]}")
        def put_back(o):
            s3.copy_object(Bucket=media, Key=o["key"], CopySource={"Bucket": media, "Key": o["key"], "VersionId": o["versionId"]})
        def delete(k):
            s3.delete_object(Bucket=media, Key=k)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put_back, copy))
            list(pool.map(delete, remove))
        print(json.dumps({"manifest": key, "objects": len(wanted), "copiedBack": len(copy), "removed": len(remove)}, separators=(",", ":")))
    else:
        sys.exit(f"greenlight: aws_py: unknown operation {op}")
except (BotoCoreError, ClientError) as e:
    target = " ".join(args[:2])
    sys.exit(f"greenlight: aws {op} {target}: {e}")
except OSError as e:  # a full disk while writing what was downloaded, most often
    target = " ".join(args[:2])
    where = f" writing {e.filename}" if e.filename else ""
    sys.exit(f"greenlight: aws {op} {target}: {os.strerror(e.errno) if e.errno else e}{where}")
'
aws_py() { python3 -c "$GL_AWS_PY" "$@"; }

# Prints the environment's parameters as KEY=VALUE lines (the .env format): only names of
# the form UPPER_SNAKE directly under the path, values on one line. For pipes only.
parameters_as_env() { aws_py env; }

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

# take_backup LABEL: pg_dump of the whole database to the backup bucket, never to local disk:
# the dump streams to the bucket and, on the way, through pg_restore, which reads every byte of
# it back (the whole archive inflated and rendered, to /dev/null, not only its table of contents). If
# the dump, the upload or the check fails, the object is removed again and nothing counts as a
# backup. The host's disk is checked first: the work files (and the live slots) need room, and
# a dump must never be what fills it. Prints a JSON summary (key, size, sha256).
#   GL_BACKUP_MIN_FREE_MB: the free space below which no backup starts (default 256).
# With GL_MEDIA_BUCKET, the media state that goes with the dump is put next to it
# (<key>.media.json, media_manifest): the summary's "media" names it.
take_backup() {
  local label=$1 work key sum size entries check toc rc free media_fd="" media_pid="" t0 media=null
  require GL_BACKUP_BUCKET GL_PARAMETER_PATH GL_REGION
  GL_BACKUP_MIN_FREE_MB=${GL_BACKUP_MIN_FREE_MB:-256}
  check GL_BACKUP_MIN_FREE_MB '^[0-9]{1,9}$' "a number of megabytes"
  work=""
  tmp_dir work backup
  free=$(($(df -Pk -- "$work" | awk 'NR == 2 { print $4 }') / 1024))
  ((free >= GL_BACKUP_MIN_FREE_MB)) ||
    die "only $free MB free on $(df -P -- "$work" | awk 'NR == 2 { print $6 }') (at least $GL_BACKUP_MIN_FREE_MB MB needed): no backup started, free some space first"
  db_connection "$work"
  key="db/$(date -u +%Y%m%dT%H%M%SZ)-$label.dump"
  t0=$(date +%s)
  if [[ -n ${GL_MEDIA_BUCKET:-} ]]; then
    # Started now, beside the dump, so its Python start costs the backup nothing; it lists the
    # media bucket once the dump is done (media_manifest).
    exec {media_fd}> >(aws_py media-manifest "$GL_MEDIA_BUCKET" "$GL_BACKUP_BUCKET" "${key%.dump}.media.json" >"$work/media")
    media_pid=$!
  fi
  mkfifo -m 0600 "$work/stream" "$work/toc"
  # The check reads the whole archive (every block inflated, every entry rendered) to /dev/null:
  # rendering it as SQL into a pipe and counting lines there cost the dump as much CPU again as
  # the check itself. The entries are counted from the archive's table of contents, which
  # pg_restore --list reads from the start of a second copy of the stream and then stops (tee -p
  # carries on without it).
  {
    pg_restore --file=/dev/null <"$work/stream"
    echo "$?" >"$work/check"
  } &
  check=$!
  { pg_restore --list <"$work/toc" | grep -c '^[0-9]' || true; } >"$work/entries" 2>/dev/null &
  toc=$!
  log "pg_dump of $PGDATABASE on $PGHOST, streamed to s3://$GL_BACKUP_BUCKET/$key and checked on the way"
  rc=0
  sum=$(pg_dump --format=custom --no-password | tee -p "$work/stream" "$work/toc" | aws_py put "$GL_BACKUP_BUCKET" "$key" -) || rc=$?
  wait "$check" || true
  wait "$toc" || true
  if ((rc != 0)) || [[ $(cat "$work/check" 2>/dev/null) != 0 ]]; then
    if [[ -n $media_fd ]]; then
      (echo stop >&"$media_fd") 2>/dev/null || true
      exec {media_fd}>&-
      wait "$media_pid" || true
    fi
    aws_py rm "$GL_BACKUP_BUCKET" "$key" 2>/dev/null || true
    die "no backup: the dump, its upload or its check failed (see above); the object was removed"
  fi
  if [[ -n $media_fd ]]; then
    # In a subshell: if the lister already died, the write's SIGPIPE ends only that.
    (echo "go $t0" >&"$media_fd") 2>/dev/null || true
    exec {media_fd}>&-
    rc=0
    wait "$media_pid" || rc=$?
    if ((rc != 0)) || [[ ! -s $work/media ]]; then
      aws_py rm "$GL_BACKUP_BUCKET" "$key" 2>/dev/null || true
      die "no backup: the media manifest of s3://$GL_MEDIA_BUCKET could not be written (see above); the dump was removed"
    fi
    media=$(<"$work/media")
    log "media manifest: $media"
  fi
  read -r sum size <<<"$sum"
  check sum '^[0-9a-f]{64}$' "a sha256"
  check size '^[0-9]+$' "a size"
  # An empty database (before the first migration) has no entries: still a valid backup.
  entries=$(<"$work/entries")
  log "verified $entries entries, $size bytes, from the stream"
  printf -v BACKUP_RESULT '{"key":"%s","bucket":"%s","size":%s,"sha256":"%s","database":"%s","entries":%s,"media":%s,"takenAt":"%s"}' \
    "$key" "$GL_BACKUP_BUCKET" "$size" "$sum" "$PGDATABASE" "$entries" "$media" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '%s\n' "$BACKUP_RESULT"
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

# render_env_new: the environment's SSM parameters into shared/.settings/env.new, whole or not at
# all. The app user writes them (tee, through sudoers) into that directory (deploy's, group app,
# 2770: the app may create files there, deploy rename them), 0600 (umask 077: sudo applies the
# union of ours and sudoers'), so deploy never holds them. A failed SSM read or a full disk
# leaves no file.
render_env_new() {
  local new=$SHARED/.settings/env.new
  if ! (umask 077 && parameters_as_env | sudo -n -u app /usr/bin/tee "$new" >/dev/null); then
    local note
    note=$(disk_note "$SHARED")
    rm -f -- "$new"
    die "${note}could not read the settings from $GL_PARAMETER_PATH (or write them): shared/.env is unchanged"
  fi
}

# render_env: shared/.env from SSM; only when the read and the write both succeeded does deploy
# (shared/'s owner) rename the new file over .env, so a failure leaves .env as it was. .env is
# read when a process starts (under the lock, or by a gated reload, see settings.sh).
render_env() {
  render_env_new
  mv -f -- "$SHARED/.settings/env.new" "$SHARED/.env"
  log "rendered shared/.env from $GL_PARAMETER_PATH"
}

# swap_files A B: exchanges two paths in one atomic step (renameat2 RENAME_EXCHANGE): there is
# no moment without either. Needs only write access to their directory.
swap_files() {
  python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2) != 0:
    sys.exit(f"greenlight: cannot exchange {sys.argv[1]} and {sys.argv[2]}: {os.strerror(ctypes.get_errno())}")
' "$1" "$2"
}

# Maintenance mode (maintenance.sh; bootstrap.sh writes the nginx side): the file
# /srv/<app>/maintenance, which nginx looks for on each request, holding why it is on.
# maintenance_on REASON: on (again), atomically; refused on a host whose nginx predates the mode,
# which would keep serving: its bootstrap must run first.
maintenance_on() {
  local reason=$1 conf=/etc/nginx/sites-enabled/greenlight-$GL_APP.conf
  [[ $reason =~ ^[A-Za-z0-9][A-Za-z0-9\ ._/,:-]{0,300}$ ]] || die "not a maintenance reason: ${reason:0:60}"
  grep -qF "if (-f $APP_ROOT/maintenance)" "$conf" 2>/dev/null ||
    die "the nginx of $(hostname) has no maintenance mode ($conf): run its bootstrap first"
  if [[ -f $APP_ROOT/maintenance && $(<"$APP_ROOT/maintenance") == "$reason" ]]; then
    log "maintenance mode already on ($reason)"
    return 0
  fi
  printf '%s\n' "$reason" >"$APP_ROOT/.maintenance.new"
  chmod 0644 "$APP_ROOT/.maintenance.new"
  mv -f "$APP_ROOT/.maintenance.new" "$APP_ROOT/maintenance"
  log "maintenance mode on ($reason): every request but the health path is answered 503 with Retry-After"
  drain_requests
}

# drain_requests: waits (bounded) until no request that nginx forwarded before maintenance mode
# began is still in the app: nginx opens one connection to a slot's socket per request (no
# upstream keepalive), so none left means none in flight. A write acknowledged after this point
# is impossible; one acknowledged before it is committed. nginx itself gives up on a request
# after proxy_read_timeout (60 s), hence the bound.
drain_requests() {
  local deadline=$((SECONDS + ${GL_DRAIN_SECONDS:-65})) n
  while :; do
    n=$(ss -xH state established 2>/dev/null | grep -cF " $APP_ROOT/run/" || true)
    if ((n == 0)); then
      log "no request in flight in the app"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "warning: $n request(s) still in the app after ${GL_DRAIN_SECONDS:-65}s; nginx has answered them 504"
      return 0
    fi
    sleep 0.1
  done
}

# under_maintenance: a step inside a maintenance window (GL_MAINTENANCE names it) makes sure the
# mode is on on its host before it changes anything: a retried step (its maintenance-on step is
# done already, and nothing turned the mode off) never runs with the site open.
under_maintenance() {
  if [[ -n ${GL_MAINTENANCE:-} ]]; then maintenance_on "$GL_MAINTENANCE"; fi
}

maintenance_off() {
  if [[ -f $APP_ROOT/maintenance ]]; then
    log "maintenance mode off (it was on for: $(<"$APP_ROOT/maintenance"))"
    rm -f -- "$APP_ROOT/maintenance"
  else
    log "maintenance mode already off"
  fi
}
