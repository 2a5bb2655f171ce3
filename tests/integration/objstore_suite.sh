#!/bin/bash
# objstore behavioural suite: the same tests (tests/programs/objstore_suite.c) against FILESYSTEM and a
# real S3 server (../shared/s3/start-s3 on a free port with a private data dir), including wrong
# credentials and the server being stopped mid-test. Prints PASS/FAIL lines.
set -u
BIN=${STRATA_TEST_BIN:?}/objstore_suite
SHARED=${STRATA_SHARED:?}
[ -x "$BIN" ] || { echo "FAIL objstore_suite: $BIN not built"; exit 1; }
TMP=$(mktemp -d /tmp/strata-objstore-it.XXXXXX)
S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export S3_PORT S3_DATA_DIR=$TMP/s3
cleanup() {
	S3_DATA_DIR=$TMP/s3 "$SHARED/s3/stop-s3" --purge >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

# FILESYSTEM
OBJSTORE_CONFIG="type: FILESYSTEM
config:
  directory: $TMP/fs" OBJSTORE_NOBJECTS=2500 "$BIN" || fs_failed=1

# S3
if ! ENV=$("$SHARED/s3/start-s3" 2>"$TMP/start.log"); then
	echo "FAIL objstore_suite:S3: start-s3 failed: $(tail -3 "$TMP/start.log" | tr '\n' ' ')"
	exit 1
fi
eval "$ENV"
EP=${S3_ENDPOINT#http://}
export OBJSTORE_CONFIG="type: S3
config:
  bucket: $S3_BUCKET
  endpoint: $EP
  region: $S3_REGION
  access_key: $S3_ACCESS_KEY
  secret_key: $S3_SECRET_KEY
  insecure: true
  part_size: 5242880
  max_retries: 2
  http_config:
    idle_conn_timeout: 30s
    response_header_timeout: 30s
prefix: suite"
export OBJSTORE_BAD_CONFIG="type: S3
config: {bucket: $S3_BUCKET, endpoint: $EP, region: $S3_REGION, access_key: $S3_ACCESS_KEY, secret_key: not-the-secret, insecure: true}"
export OBJSTORE_STOP_CMD="S3_DATA_DIR=$TMP/s3 $SHARED/s3/stop-s3 >/dev/null 2>&1"
export OBJSTORE_NOBJECTS=2500
"$BIN" || s3_failed=1
[ -z "${fs_failed:-}" ] && [ -z "${s3_failed:-}" ]
