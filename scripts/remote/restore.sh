#!/usr/bin/env bash
# greenlight restore: replaces the public schema of the database with backup GL_BACKUP_KEY
# (pg_restore --clean --if-exists -n public, in one transaction). A safety backup of the
# current data is taken first, under maintenance mode on every host (the program's
# maintenance-on steps; GL_MAINTENANCE), so every write acknowledged before the restore is in
# it: the restore discards the writes made since backup GL_BACKUP_KEY was taken, and the safety
# backup keeps them. Prints what it did as JSON.
#
# Values: GL_APP GL_BACKUP_BUCKET GL_BACKUP_KEY GL_PARAMETER_PATH GL_REGION [GL_MAINTENANCE]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=restore

require GL_APP GL_BACKUP_BUCKET GL_BACKUP_KEY GL_PARAMETER_PATH GL_REGION
check_app
check_key GL_BACKUP_KEY
check GL_BACKUP_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
app_paths
lock
under_maintenance

# In this shell, not $(...): the backup's work directory (its pgpass file) goes with the EXIT trap.
take_backup before-restore >/dev/null
safety=$BACKUP_RESULT
log "safety backup taken: $safety"

work=""
tmp_dir work restore
db_connection "$work"
log "downloading s3://$GL_BACKUP_BUCKET/$GL_BACKUP_KEY"
aws_py get "$GL_BACKUP_BUCKET" "$GL_BACKUP_KEY" "$work/restore.dump" >/dev/null
pg_restore --list "$work/restore.dump" >/dev/null || die "$GL_BACKUP_KEY is not a pg_dump custom-format archive"
log "restoring $GL_BACKUP_KEY into $PGDATABASE (public schema)"
pg_restore --clean --if-exists --schema=public --no-owner --no-privileges --single-transaction \
  --exit-on-error --no-password --dbname="$PGDATABASE" "$work/restore.dump" >&2 ||
  die "pg_restore failed; the transaction rolled back, the data is as before"
printf '{"restored":"%s","safetyBackup":%s}\n' "$GL_BACKUP_KEY" "$safety"
