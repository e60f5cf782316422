#!/usr/bin/env bash
# greenlight restore: replaces the public schema of the database with backup GL_BACKUP_KEY
# (pg_restore --clean --if-exists -n public, in one transaction). A safety backup of the
# current data is taken first, under maintenance mode on every host (the program's
# maintenance-on steps; GL_MAINTENANCE), so every write acknowledged before the restore is in
# it: the restore discards the writes made since backup GL_BACKUP_KEY was taken, and the safety
# backup keeps them. With GL_MEDIA_BUCKET, media goes back to the state the backup's manifest
# names (<key>.media.json, written by the backup next to its dump): each key to its version,
# uploads made since deleted (delete markers: their versions stay, and the safety backup's
# manifest names them). Prints what it did as JSON.
#
# One restore per request: the backup key and, when config names one, the restore id
# (GL_RESTORE_ID). step.sh records the result per request; a retried step of the same request
# (the SSH connection dropped while the first run went on to finish on the host) prints the
# recorded result instead of restoring again, which would discard every write made since.
#
# Values: GL_APP GL_BACKUP_BUCKET GL_BACKUP_KEY GL_PARAMETER_PATH GL_REGION [GL_RESTORE_ID]
#         [GL_MEDIA_BUCKET]
#         [GL_MAINTENANCE]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=restore

require GL_APP GL_BACKUP_BUCKET GL_BACKUP_KEY GL_PARAMETER_PATH GL_REGION
check_app
check_key GL_BACKUP_KEY
check GL_BACKUP_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"
if [[ -n ${GL_MEDIA_BUCKET:-} ]]; then check GL_MEDIA_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"; fi
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
if [[ -n ${GL_RESTORE_ID:-} ]]; then
  check GL_RESTORE_ID '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' "a restore id (letters, digits, . _ -)"
  [[ $GL_RESTORE_ID != *..* ]] || die "GL_RESTORE_ID contains .."
fi
app_paths
lock
once "for restore $GL_BACKUP_KEY${GL_RESTORE_ID:+ ($GL_RESTORE_ID)}"
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
media=null
if [[ -n ${GL_MEDIA_BUCKET:-} ]]; then
  manifest=${GL_BACKUP_KEY%.dump}.media.json
  rc=0
  aws_py media-restore "$GL_MEDIA_BUCKET" "$GL_BACKUP_BUCKET" "$manifest" >"$work/media" 2>"$work/media.err" || rc=$?
  if ((rc == 0)); then
    media=$(<"$work/media")
    log "media of s3://$GL_MEDIA_BUCKET restored to $manifest: $media"
  elif grep -q 'NoSuchKey' "$work/media.err"; then
    log "$GL_BACKUP_KEY has no media manifest (taken before greenlight kept one): media left as it is"
  else
    cat "$work/media.err" >&2
    die "the database is restored from $GL_BACKUP_KEY, but media is not (see above): run the restore again (pulumi up --replace the restore step)"
  fi
fi
printf -v result '{"restored":"%s",%s"media":%s,"safetyBackup":%s,"restoredAt":"%s"}' "$GL_BACKUP_KEY" \
  "${GL_RESTORE_ID:+\"restoreId\":\"$GL_RESTORE_ID\",}" "$media" "$safety" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Recorded before the lock is released: a retry that waited for it finds the record.
record "$result"
log "restored $GL_BACKUP_KEY"
printf '%s\n' "$result"
