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
for dir in "$RELEASES"/* "$RELEASES"/.new-* "$RELEASES"/.greenlight-*; do
  [[ -e $dir ]] || continue
  r=${dir##*/}
  [[ -n ${keep[$r]:-} ]] && continue
  rm -rf -- "$dir"
  removed+=("$r")
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
  rm -rf -- "$v"
  removed+=("venv:${v##*/}")
done

log "kept ${#keep[@]} releases, removed ${#removed[@]} entries"
python3 -c '
import json, sys
kept, removed = sys.argv[1].split(), sys.argv[2].split()
print(json.dumps({"kept": sorted(kept), "removed": sorted(removed)}))
' "${!keep[*]}" "${removed[*]}"
