#!/usr/bin/env bash
# with-s3-endpoint.sh CMD [ARGS...]: runs the test command with a throwaway S3 endpoint for the S3
# suite (test/s3-*.test.ts): a single-host Ceph RGW on 127.0.0.1 (ceph-rgw-s3.sh, beside this
# file), which sets S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY and S3_REGION for the command and
# stops the daemons after it. Where Ceph is not installed or does not start, the command runs
# anyway with FERRY_S3_SKIP set to the reason: the S3 tests are then skipped (tap counts them as
# skipped, never as passed) and the reason is printed. An S3_ENDPOINT already set is used as it is.
# `.ci/run` installs Ceph's packages; FERRY_S3=off skips the suite on purpose.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

run_without_s3() {
  export FERRY_S3_SKIP=$1
  shift
  echo "no S3 endpoint ($FERRY_S3_SKIP): the S3 tests (and the bench's s3 scenario) are skipped" >&2
  exec "$@"
}

if [ -n "${S3_ENDPOINT:-}" ] || [ -n "${FERRY_S3_SKIP:-}" ]; then exec "$@"; fi
if [ "${FERRY_S3:-on}" = off ]; then run_without_s3 "FERRY_S3=off" "$@"; fi
for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph python3 curl; do
  command -v "$tool" >/dev/null ||
    run_without_s3 "Ceph RGW is not installed here (no $tool; .ci/run installs ceph-mon ceph-osd radosgw ceph-common)" "$@"
done

# The marker tells a command that ran (and failed) from an endpoint that never came up.
started=$(mktemp)
READY_TIMEOUT=${READY_TIMEOUT:-90} bash "$here/ceph-rgw-s3.sh" bash -c 'echo ran > "$0"; exec "$@"' "$started" "$@"
status=$?
if [ ! -s "$started" ]; then
  rm -f "$started"
  run_without_s3 "the Ceph RGW did not start (exit status $status; its log is above)" "$@"
fi
rm -f "$started"
exit "$status"
