#!/usr/bin/env bash
# greenlight check: the migration safety check of release GL_RELEASE, on the first host, after
# its fetch and before its backup. It runs migration_check.py (installed next to this script)
# with the release's own venv python, as the app user (it reads the release's .env), against
# the real database, read-only: which migrations Django would apply, and whether each
# operation is safe while the serving release still serves and after a rollback to it. What
# the serving release uses comes from its own models: the release the other slot runs on this
# host (the one that serves until this one goes live, and again after a rollback), or, when
# that slot has none (a first release), from the state of the migrations already applied.
#
# stdout: the report (JSON; the SQL of each operation stays in the log on the host). An unsafe
# release fails the step (exit 3) before anything is written, and the refusal (migration,
# operation, the safe way) is the step's failure message. GL_ALLOW_UNSAFE=1 (the release that
# allowUnsafeMigrations names) lets it through: the report says "allowed": true. Running it
# again changes nothing: it only reads.
#
# Values: GL_APP GL_SLOT GL_RELEASE GL_STACK [GL_ALLOW_UNSAFE]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=check

require GL_APP GL_SLOT GL_RELEASE GL_STACK
check_app
check_slot
check_release
check GL_STACK '^[a-z][a-z0-9-]{0,11}$' "a stack name"
[[ -z ${GL_ALLOW_UNSAFE:-} || $GL_ALLOW_UNSAFE == 1 ]] || die "GL_ALLOW_UNSAFE is not 1"
app_paths
lock

here=$(cd "${BASH_SOURCE[0]%/*}" && pwd -P)
script=$here/migration_check.py
[[ -f $script ]] || die "$script is missing: the scripts of this version are incomplete"
release=$RELEASES/$GL_RELEASE
[[ -f $release/.artifact-sha256 ]] || die "release $GL_RELEASE is not on this host: fetch must run first"

args=(--project "$release" --release "$GL_RELEASE" --stack "$GL_STACK")
# The settings migrate runs with (greenlight.json may pass --settings): the check reads the same.
mapfile -d '' migrate < <(manifest migrate "$release")
for ((i = 0; i < ${#migrate[@]}; i++)); do
  case ${migrate[i]} in
    --settings=*) args+=(--settings "${migrate[i]#--settings=}") ;;
    --settings) args+=(--settings "${migrate[i + 1]:-}") ;;
  esac
done
# The other slot's release on this host (activate points <slot> at releases/<id>).
if [[ $GL_SLOT == blue ]]; then other=green; else other=blue; fi
serving=""
target=$(readlink -- "$APP_ROOT/$other" 2>/dev/null || true)
if [[ $target =~ ^releases/([A-Za-z0-9][A-Za-z0-9._-]{0,63})$ && ${BASH_REMATCH[1]} != "$GL_RELEASE" ]]; then
  serving=${BASH_REMATCH[1]}
  [[ -f $RELEASES/$serving/.artifact-sha256 ]] || die "the $other slot points at $target, which is not a finished release"
  args+=(--serving "$RELEASES/$serving")
else
  log "the $other slot runs no other release here: judging against the applied migrations"
fi
if [[ -n ${GL_ALLOW_UNSAFE:-} ]]; then args+=(--allow-unsafe); fi

work=""
tmp_dir work check
log "checking the migrations of $GL_RELEASE${serving:+ against $serving (the $other slot)}: ${args[*]}"
rc=0
as_app "$release" python "$script" "${args[@]}" >"$work/report" 2>"$work/err" || rc=$?
# The app's own output (Django, settings) stays in the log; the check's own lines are greenlight's.
cat -- "$work/err" >&2
while IFS= read -r line; do log "${line#greenlight migration check: }"; done < <(grep -a '^greenlight migration check: ' "$work/err" || true)

# The report without the SQL (the log keeps the whole of it), and its message, if any.
compact() {
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for entry in r.get("plan", []):
    for op in entry.get("operations", []):
        op.pop("sql", None)
        for f in op.get("findings", []):
            f.pop("statement", None)
r["servingRelease"] = sys.argv[3] or None
if sys.argv[2] == "message":
    sys.stdout.write(r.get("message", ""))
else:
    print(json.dumps(r, separators=(",", ":")))
' "$work/report" "$1" "$serving"
}

case $rc in
  0)
    { echo "--- the whole report:"; cat -- "$work/report"; } >&2
    summary=$(compact report) || die "the migration check printed no report"
    if grep -q '"allowed":true' <<<"$summary"; then
      log "unsafe, and let through on purpose (allowUnsafeMigrations = $GL_RELEASE)"
    fi
    printf '%s\n' "$summary"
    ;;
  3)
    { echo "--- the whole report:"; cat -- "$work/report"; } >&2
    message=$(compact message) || die "the migration check refused $GL_RELEASE but printed no report"
    # step.sh shows this file as the step's failure message (it holds names of migrations,
    # tables and columns, never a value from the database or .env).
    if [[ -n ${GL_MESSAGE_FILE:-} ]]; then printf '%s\n' "$message" >"$GL_MESSAGE_FILE"; fi
    log "refused: $GL_RELEASE has unsafe migrations; nothing was written"
    exit 3
    ;;
  *) die "the migration check could not run (exit $rc): see its lines above" ;;
esac
