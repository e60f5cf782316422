#!/usr/bin/env bash
# greenlight fetch: puts release GL_RELEASE on this host, complete or not at all: download
# the artifact, check its sha256, unpack, build (or reuse) the venv from the artifact's own
# wheelhouse without any index, link the shared dirs, render shared/.env from SSM, run
# collectstatic, then rename the finished tree into releases/<id>. Safe to re-run.
#
# Values: GL_APP GL_SLOT GL_RELEASE GL_ARTIFACT_BUCKET GL_ARTIFACT_KEY GL_SHA256
#         GL_PARAMETER_PATH GL_REGION GL_WORKERS
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=fetch

require GL_APP GL_SLOT GL_RELEASE GL_ARTIFACT_BUCKET GL_ARTIFACT_KEY GL_SHA256 GL_PARAMETER_PATH GL_REGION GL_WORKERS
check_app
check_slot
check_release
check_key GL_ARTIFACT_KEY
check GL_ARTIFACT_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"
check GL_SHA256 '^[0-9a-f]{64}$' "a sha256"
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
check GL_WORKERS '^[0-9]{1,2}$' "a worker count"
app_paths
lock
# Release trees and venvs are world-readable: the app user runs them, nginx serves their
# static files. Secrets live in shared/.env only (0600, app).
umask 022

release=$RELEASES/$GL_RELEASE

# The environment's settings may have changed (a rotated secret): render .env on every run.
if [[ -d $release ]]; then
  [[ -f $release/.artifact-sha256 ]] || die "$release exists but is not a finished release"
  have=$(<"$release/.artifact-sha256")
  [[ $have == "$GL_SHA256" ]] ||
    die "release $GL_RELEASE is already on this host with another artifact ($have): release ids are immutable, pick a new one"
  render_env
  log "release $GL_RELEASE already fetched"
  printf '{"release":"%s","venv":"present","fetched":false}\n' "$GL_RELEASE"
  exit 0
fi

# Leftovers of an interrupted fetch of this release (we hold the lock: nobody else is at it).
# "~" cannot be in a release id; no leading dot, because sudoers' releases/*/venv/bin/python
# (how collectstatic runs as the app) is a glob, and globs skip dot directories.
stage=$RELEASES/$GL_RELEASE~new
rm -rf -- "$stage"
# A fetch that fails leaves nothing behind (on a full disk, its leftovers would keep it full for
# the live slots); once renamed into releases/<id>, the stage is gone and this removes nothing.
GL_TMP_DIRS+=("$stage")
# Work next to the releases, so the finished tree is renamed into place, never copied.
work=""
tmp_dir work fetch "$RELEASES"

# Rendering .env is an SSM call (a second of CLI start-up) that needs nothing from the
# artifact: it runs while the artifact downloads and unpacks, and collectstatic waits for it.
# (If this script fails first, the job still finishes, under the lock it inherited.)
render_env &
render_job=$!

# Download, hash and unpack in one pass into this private directory; nothing in it is used
# unless the checksum matches (and it is removed when it does not).
log "downloading and unpacking s3://$GL_ARTIFACT_BUCKET/$GL_ARTIFACT_KEY"
mkdir "$work/a"
actual=$(aws_py unpack "$GL_ARTIFACT_BUCKET" "$GL_ARTIFACT_KEY" "$work/a") ||
  die "$(disk_note "$work")could not download or unpack $GL_ARTIFACT_KEY (see above)"
[[ $actual == "$GL_SHA256" ]] ||
  die "checksum mismatch for $GL_ARTIFACT_KEY: expected $GL_SHA256, got $actual (corrupt or replaced artifact)"
for f in manifest.json requirements.lock wheelhouse app; do
  [[ -e $work/a/$f ]] || die "the artifact has no $f (build it with npm run package-site)"
done

# The manifest's fields in one interpreter start (each costs tens of ms): lockHash, wsgi, then
# collectstatic's argv, NUL-separated.
mapfile -d '' fields < <(python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
sys.stdout.write("".join(str(v) + "\0" for v in [m["lockHash"], m["wsgi"], *m["collectstatic"]]))
' "$work/a")
lock_hash=${fields[0]:-}
wsgi=${fields[1]:-}
collect=("${fields[@]:2}")
check lock_hash '^[0-9a-f]{64}$' "a lock hash"
((${#collect[@]})) || die "the manifest has no collectstatic command"
[[ $(sha256sum "$work/a/requirements.lock" | cut -d' ' -f1) == "$lock_hash" ]] ||
  die "requirements.lock does not match the manifest's lockHash"
check wsgi '^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$' "a WSGI path (module:callable)"

# uv_from WHEEL: the uv binary of the artifact's uv wheel, extracted once per wheel (by its
# sha256, which the artifact's checksum covers) into shared/tools/uv-<sha256>/; prints its path,
# or nothing (pip builds the venv then) when the wheel holds no uv or it does not run here.
uv_from() {
  local sum dir new
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  dir=$SHARED/tools/uv-$sum
  if [[ ! -x $dir/uv ]]; then
    mkdir -p -- "$SHARED/tools"
    new=$(mktemp -d "$SHARED/tools/.uv-XXXXXX")
    if python3 -c '
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
' "$1" "$new/uv" && "$new/uv" --version >/dev/null 2>&1; then
      rm -rf -- "$dir"
      mv -T -- "$new" "$dir"
    else
      rm -rf -- "$new"
      log "the artifact's $(basename -- "$1") holds no uv that runs here: building the venv with pip"
      return 0
    fi
  fi
  printf '%s\n' "$dir/uv"
}

# The venv depends only on the lock: releases with the same lock share one, built once.
venv=$SHARED/venvs/$lock_hash
if [[ -f $venv/.complete ]]; then
  venv_state=reused
  log "venv $lock_hash reused"
else
  venv_state=built
  log "building venv $lock_hash from the artifact's wheelhouse"
  rm -rf -- "$venv"
  uv=""
  wheels=("$work"/a/tools/uv-*.whl)
  [[ -f ${wheels[0]} ]] && uv=$(uv_from "${wheels[0]}")
  # A venv that could not be built is removed, and a full disk named first.
  venv_failed() {
    local note
    note=$(disk_note "$venv")
    rm -rf -- "$venv"
    die "${note}$1"
  }
  if [[ -n $uv ]]; then
    # uv (the artifact's tools/, see uv_from): the same offline, hash-checked install as pip's
    # below, bytecode compiled as pip does, in a fraction of the time.
    export UV_CACHE_DIR=$SHARED/uv-cache UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never
    "$uv" venv --quiet --python /usr/bin/python3 "$venv" >&2 || venv_failed "uv could not create the venv (see above)"
    "$uv" pip install --quiet --offline --no-index --find-links "$work/a/wheelhouse" --require-hashes \
      --compile-bytecode --python "$venv/bin/python" -r "$work/a/requirements.lock" >&2 ||
      venv_failed "the venv could not be built from the wheelhouse (see uv's output above)"
    log "venv $lock_hash built with uv"
  else
    python3 -m venv "$venv" >&2 || venv_failed "python3 could not create the venv (see above)"
    PIP_CACHE_DIR=$SHARED/pip-cache "$venv/bin/pip" install --quiet --disable-pip-version-check \
      --no-index --find-links "$work/a/wheelhouse" --require-hashes -r "$work/a/requirements.lock" >&2 ||
      venv_failed "the venv could not be built from the wheelhouse (see pip's output above)"
  fi
  touch "$venv/.complete"
fi

mv "$work/a/app" "$stage"
cp "$work/a/manifest.json" "$work/a/requirements.lock" "$stage/"
ln -sfn "$venv" "$stage/venv"
ln -sfn "$SHARED/media" "$stage/media"
ln -sfn "$SHARED/.env" "$stage/.env"
printf '%s\n' "$GL_RELEASE" >"$stage/REVISION"
cat >"$stage/gunicorn.conf.py" <<EOF
# Written by greenlight fetch for release $GL_RELEASE.
import sys

wsgi_app = "$wsgi"
workers = $GL_WORKERS
accesslog = "-"
forwarded_allow_ips = "*"
graceful_timeout = 25
# This release's own directory, not the slot's link: gunicorn resolves its working directory
# once, so a graceful reload (HUP, see activate.sh) would keep importing the release the
# process started with. Earlier releases leave the import path, so nothing of theirs loads.
chdir = "$release"
sys.path[:] = [p for p in sys.path if not p.startswith("$RELEASES/")]
EOF
# collectstatic writes into STATIC_ROOT = BASE_DIR / "staticfiles" (docs/site.md), which only
# the app may write, and nginx serves /static/ from it; a root static/ is the site's own source
# (STATICFILES_DIRS). A site on the earlier contract (STATIC_ROOT = BASE_DIR / "static", no root
# static/ shipped) still works: its static/ is made writable too, and staticfiles links to it.
install -d -g app -m 2775 "$stage/staticfiles"
made_static=0
if [[ ! -e $stage/static ]]; then
  install -d -g app -m 2775 "$stage/static"
  made_static=1
fi

wait "$render_job" || die "could not render shared/.env from $GL_PARAMETER_PATH"
log "collectstatic"
as_app "$stage" "${collect[@]}" >&2 || die "$(disk_note "$stage")collectstatic failed"
if ((made_static)); then
  if [[ -z $(ls -A -- "$stage/staticfiles") && -n $(ls -A -- "$stage/static") ]]; then
    rmdir -- "$stage/staticfiles"
    ln -s static "$stage/staticfiles"
    log "collected into static/ (STATIC_ROOT = BASE_DIR / \"static\"): served from there; docs/site.md asks for staticfiles"
  else
    rmdir -- "$stage/static" 2>/dev/null || true
  fi
fi

printf '%s\n' "$GL_SHA256" >"$stage/.artifact-sha256"
mv -T "$stage" "$release"
log "release $GL_RELEASE ready ($venv_state venv)"
printf '{"release":"%s","venv":"%s","lockHash":"%s","fetched":true}\n' "$GL_RELEASE" "$venv_state" "$lock_hash"
