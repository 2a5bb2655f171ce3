#!/bin/bash
# objstore behavioural suite: the same tests (tests/programs/objstore_suite.c) against FILESYSTEM and a
# real S3 server (scripts/s3-server on a free port with a private data dir), including wrong
# credentials and the server being stopped mid-test. On S3 also two shorter passes over the upload
# variants (S3-ramp: 40 MiB part_size, so the multipart layout ramps up 5, 10, 20, 40 MiB, with Content-MD5
# and UNSIGNED-PAYLOAD; S3-sha256: send_content_md5 false, so parts sign their SHA-256), and a check with
# curl that the server rejects an UNSIGNED-PAYLOAD body whose signed Content-MD5 does not match (the
# integrity UNSIGNED-PAYLOAD relies on). Prints PASS/FAIL lines.
set -u
BIN=${STRATA_TEST_BIN:?}/objstore_suite
S3_CTL=${STRATA_ROOT:?}/scripts/s3-server
[ -x "$BIN" ] || { echo "FAIL objstore_suite: $BIN not built"; exit 1; }
TMP=$(mktemp -d /tmp/strata-objstore-it.XXXXXX)
S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export S3_PORT S3_DATA_DIR=$TMP/s3
cleanup() {
	S3_DATA_DIR=$TMP/s3 "$S3_CTL" stop --purge >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

# FILESYSTEM
OBJSTORE_CONFIG="type: FILESYSTEM
config:
  directory: $TMP/fs" OBJSTORE_NOBJECTS=2500 "$BIN" || fs_failed=1

# S3
if ! ENV=$("$S3_CTL" start 2>"$TMP/start.log"); then
	echo "FAIL objstore_suite:S3: s3-server start failed: $(tail -3 "$TMP/start.log" | tr '\n' ' ')"
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
s3_config() { # PART_SIZE SEND_MD5
	printf 'type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  region: %s\n  access_key: %s\n  secret_key: %s\n' \
		"$S3_BUCKET" "$EP" "$S3_REGION" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
	printf '  insecure: true\n  part_size: %s\n  send_content_md5: %s\n  max_retries: 2\nprefix: %s\n' "$1" "$2" "$3"
}
# Upload variants: only the first tests matter, a few objects keep them short; renamed so the lines
# are told apart from the main S3 pass. (set -o pipefail: the suite's exit status counts.)
set -o pipefail
OBJSTORE_CONFIG=$(s3_config 41943040 true ramp) OBJSTORE_BIG_MB=60 OBJSTORE_NOBJECTS=100 "$BIN" |
	sed 's/objstore_suite:S3:/objstore_suite:S3-ramp:/' || s3_failed=1
OBJSTORE_CONFIG=$(s3_config 5242880 false sha) OBJSTORE_NOBJECTS=100 "$BIN" |
	sed 's/objstore_suite:S3:/objstore_suite:S3-sha256:/' || s3_failed=1
set +o pipefail

# UNSIGNED-PAYLOAD with Content-MD5: a body that does not match the signed MD5 must be refused.
printf 'the body that was sent' >"$TMP/body"
put_md5() { # MD5_OF_FILE -> HTTP status of a PUT of $TMP/body with that Content-MD5
	curl -s --noproxy '*' -o "$TMP/md5.out" -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:$S3_REGION:s3" \
		--user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		-H "Content-MD5: $(openssl md5 -binary "$1" | base64)" -T "$TMP/body" "$S3_ENDPOINT/$S3_BUCKET/md5-check"
}
printf 'another body' >"$TMP/other"
good=$(put_md5 "$TMP/body")
bad=$(put_md5 "$TMP/other")
if [ "$good" = 200 ] && [ "$bad" = 400 ] && grep -q BadDigest "$TMP/md5.out"; then
	echo "PASS objstore_suite:S3:unsigned_payload_content_md5_checked"
else
	echo "FAIL objstore_suite:S3:unsigned_payload_content_md5_checked: matching MD5 -> $good, other MD5 -> $bad $(head -c 300 "$TMP/md5.out")"
	s3_failed=1
fi

export OBJSTORE_BAD_CONFIG="type: S3
config: {bucket: $S3_BUCKET, endpoint: $EP, region: $S3_REGION, access_key: $S3_ACCESS_KEY, secret_key: not-the-secret, insecure: true}"
export OBJSTORE_STOP_CMD="S3_DATA_DIR=$TMP/s3 $S3_CTL stop >/dev/null 2>&1"
export OBJSTORE_NOBJECTS=2500
# 90 MiB in 5 MiB parts: 19 parts, more than the uploader's 16 slots, so the MD5 lanes run in batches
# and slots are reused while parts are on the wire.
OBJSTORE_BIG_MB=90 "$BIN" || s3_failed=1
[ -z "${fs_failed:-}" ] && [ -z "${s3_failed:-}" ]
