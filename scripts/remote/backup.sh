#!/usr/bin/env bash
# greenlight backup: before release GL_RELEASE migrates, a pg_dump (custom format) of the
# whole database streams to the backup bucket, read back whole by pg_restore on the way, and with
# GL_MEDIA_BUCKET the media state that goes with it (<key>.media.json next to the dump: every
# upload's key and version). Prints {"key","size","sha256","media",...}: the program turns it
# into the lastBackup stack output.
#
# Values: GL_APP GL_RELEASE GL_BACKUP_BUCKET GL_PARAMETER_PATH GL_REGION [GL_MEDIA_BUCKET]
#         [GL_MAINTENANCE]
# shellcheck source-path=SCRIPTDIR source=lib.sh
if ! declare -F log >/dev/null; then . "${BASH_SOURCE[0]%/*}/lib.sh"; fi
GL_STEP=backup

require GL_APP GL_RELEASE GL_BACKUP_BUCKET GL_PARAMETER_PATH GL_REGION
check_app
check_release
check GL_BACKUP_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"
if [[ -n ${GL_MEDIA_BUCKET:-} ]]; then check GL_MEDIA_BUCKET '^[a-z0-9][a-z0-9.-]{1,62}$' "a bucket name"; fi
check GL_PARAMETER_PATH '^/[A-Za-z0-9_./-]+/$' "an SSM path ending in /"
app_paths
lock
# One backup per release: a retried step (the SSH connection dropped while it ran on) prints the
# backup it took.
once "for release $GL_RELEASE"
under_maintenance

take_backup "before-$GL_RELEASE"
record "$BACKUP_RESULT"
