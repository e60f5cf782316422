#!/usr/bin/env bash
# greenlight migrate: runs release GL_RELEASE's migrate command (its manifest.json) once, as
# the app user, after the backup. The framework's output goes to stderr; stdout carries a
# JSON summary of the migrations it applied (Django's showmigrations --plan, before/after).
#
# Values: GL_APP GL_RELEASE
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=migrate

require GL_APP GL_RELEASE
check_app
check_release
app_paths
lock
# A retried step whose first run finished on the host (the SSH connection dropped meanwhile)
# prints what that run applied, rather than an empty list from a second run.
once

release=$RELEASES/$GL_RELEASE
[[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"

# Names of unapplied migrations ("app.0002_name"), one per line; empty when the site is not
# a Django project with showmigrations.
pending() {
  as_app "$release" python manage.py showmigrations --plan 2>/dev/null | sed -n 's/^\[ \] *//p' || true
}

before=$(pending)
mapfile -d '' migrate < <(manifest migrate "$release")
log "running: ${migrate[*]}"
as_app "$release" "${migrate[@]}" >&2 || die "the migrate command failed; the database is as the backup left it or partly migrated: see the output above"
after=$(pending)
[[ -z $after ]] || die "migrations still unapplied after migrate: $after"

result=$(python3 -c '
import json, sys
print(json.dumps({"release": sys.argv[1], "applied": [m for m in sys.argv[2].splitlines() if m]}))
' "$GL_RELEASE" "$before")
record "$result"
printf '%s\n' "$result"
