#!/usr/bin/env bash
# greenlight migrate: runs release GL_RELEASE's migrate command (its manifest.json) once, as
# the app user, after the backup. The framework's output goes to stderr; stdout carries a
# JSON summary of the migrations it applied (Django's showmigrations --plan, before/after).
#
# Values: GL_APP GL_RELEASE [GL_MAINTENANCE]
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
once "for release $GL_RELEASE"
under_maintenance

release=$RELEASES/$GL_RELEASE
[[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"

mapfile -d '' migrate < <(manifest migrate "$release")
log "running: ${migrate[*]}"
failed="the migrate command failed; the database is as the backup left it or partly migrated: see the output above"

# Django's own migrate (python manage.py migrate ...): one interpreter start does it all. Django
# is set up once; the plan's unapplied migrations are read before and after migrate runs, in the
# same process (what showmigrations --plan lists). The framework's output goes to stderr, the
# summary to stdout.
if ((${#migrate[@]} >= 3)) && [[ ${migrate[0]} == python && ${migrate[1]} == *manage.py && ${migrate[2]} == migrate ]]; then
  summary=$(as_app "$release" python -c '
import json, os, runpy, sys
out, sys.stdout = sys.stdout, sys.stderr
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
from django.core import management
from django.core.management.base import CommandParser, handle_default_options
run, summary = management.execute_from_command_line, {}

def pending():
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    ex = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    return [f"{m.app_label}.{m.name}" for m, _ in ex.migration_plan(ex.loader.graph.leaf_nodes())]

def once(argv=None):
    import django
    argv = argv or sys.argv
    # --settings and --pythonpath first, as Django'"'"'s ManagementUtility does before setup().
    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("args", nargs="*")
    handle_default_options(parser.parse_known_args(argv[2:])[0])
    django.setup()
    summary["before"] = pending()
    run(argv)
    summary["after"] = pending()

management.execute_from_command_line = once
runpy.run_path(script, run_name="__main__")
out.write(json.dumps(summary) + "\n")
' "${migrate[@]:1}") || die "$failed"
  [[ ${summary##*$'\n'} == '{"before": '*'"after": '* ]] || die "migrate ran, but its plan could not be read back"
  # The last line is the summary (should anything else have reached stdout): the unapplied
  # migrations after, on one line, then those applied, one per line.
  { read -r after || true; before=$(cat); } < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1].splitlines()[-1])
print(" ".join(s["after"]))
print("\n".join(s["before"]))
' "$summary")
else
  # Names of unapplied migrations ("app.0002_name"), one per line; empty when the site is not
  # a Django project with showmigrations.
  pending() {
    as_app "$release" python manage.py showmigrations --plan 2>/dev/null | sed -n 's/^\[ \] *//p' || true
  }
  before=$(pending)
  as_app "$release" "${migrate[@]}" >&2 || die "$failed"
  after=$(pending)
fi
[[ -z $after ]] || die "migrations still unapplied after migrate: $after"

result=$(python3 -c '
import json, sys
print(json.dumps({"release": sys.argv[1], "applied": [m for m in sys.argv[2].splitlines() if m]}))
' "$GL_RELEASE" "$before")
record "$result"
printf '%s\n' "$result"
