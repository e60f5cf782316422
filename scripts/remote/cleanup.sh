#!/usr/bin/env bash
# greenlight cleanup: keeps the GL_KEEP newest releases on this host, and always the releases
# the blue and green slots point to; removes the rest, leftovers of interrupted fetches and
# venvs no kept release uses. Prints {"kept":[...],"removed":[...]}.
#
# Values: GL_APP GL_KEEP
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=cleanup

require GL_APP GL_KEEP
check_app
check GL_KEEP '^[0-9]{1,2}$' "a number of releases"
((GL_KEEP >= 1)) || die "GL_KEEP must be at least 1"
app_paths
lock

declare -A keep=()
for slot in blue green; do
  target=$(readlink "$APP_ROOT/$slot" || true)
  [[ -n $target ]] && keep[${target#releases/}]=1
done

# Finished releases, newest first (by the time their fetch completed).
mapfile -t releases < <(
  find "$RELEASES" -mindepth 2 -maxdepth 2 -name .artifact-sha256 -printf '%T@ %h\n' | sort -rn | cut -d' ' -f2- |
    xargs -r -n1 basename
)
n=0
for r in "${releases[@]}"; do
  if ((n < GL_KEEP)); then keep[$r]=1; fi
  n=$((n + 1))
done

removed=()
stuck=()
# remove DIR NAME: a release the app wrote into with permissions deploy cannot undo (a site
# that sets FILE_UPLOAD_DIRECTORY_PERMISSIONS to 0o755, say) is reported, not fatal: the
# release is already live, and the next cleanup tries again.
remove() {
  if rm -rf -- "$1" 2>/dev/null; then
    removed+=("$2")
  else
    stuck+=("$2")
    log "could not remove all of $1: the app created files there deploy may not delete (group-writable directories fix it)"
  fi
}
for dir in "$RELEASES"/* "$RELEASES"/.greenlight-*; do
  [[ -e $dir ]] || continue
  r=${dir##*/}
  [[ -n ${keep[$r]:-} ]] && continue
  remove "$dir" "$r"
done

# Venvs: keep those a remaining release links to.
declare -A used=()
for r in "${!keep[@]}"; do
  v=$(readlink "$RELEASES/$r/venv" || true)
  [[ -n $v ]] && used[${v##*/}]=1
done
for v in "$SHARED"/venvs/*; do
  [[ -e $v ]] || continue
  [[ -n ${used[${v##*/}]:-} ]] && continue
  remove "$v" "venv:${v##*/}"
done

log "kept ${#keep[@]} releases, removed ${#removed[@]} entries${stuck[*]:+, could not remove ${stuck[*]}}"
python3 -c '
import json, sys
kept, removed, stuck = (a.split() for a in sys.argv[1:4])
print(json.dumps({"kept": sorted(kept), "removed": sorted(removed), "notRemoved": sorted(stuck)}))
' "${!keep[*]}" "${removed[*]}" "${stuck[*]}"
