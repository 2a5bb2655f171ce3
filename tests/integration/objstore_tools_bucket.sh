#!/bin/bash
# `strata tools bucket upload-blocks` of a promtool-made block, then ls / inspect / verify, on
# FILESYSTEM and on a private S3 server. Prints PASS/FAIL lines.
set -u
S=${STRATA_BIN:?}
SHARED=${STRATA_SHARED:?}
TMP=$(mktemp -d /tmp/strata-tools-bucket.XXXXXX)
S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export S3_PORT S3_DATA_DIR=$TMP/s3
trap 'S3_DATA_DIR=$TMP/s3 "$SHARED/s3/stop-s3" --purge >/dev/null 2>&1; rm -rf "$TMP"' EXIT
fail=0
check() { # name cond...
	local n=$1
	shift
	if "$@"; then echo "PASS tools_bucket:$BACKEND:$n"; else echo "FAIL tools_bucket:$BACKEND:$n"; fail=1; fi
}

base=$(( ($(date +%s) / 7200 - 1) * 7200 ))  # one 2h-aligned window: promtool makes one block
{
	echo '# TYPE up gauge'
	for i in $(seq 0 239); do
		echo "up{job=\"a\"} 1 $((base + i * 15))"
		echo "up{job=\"b\"} 0 $((base + i * 15))"
	done
	echo '# EOF'
} >"$TMP/in.om"
promtool tsdb create-blocks-from openmetrics "$TMP/in.om" "$TMP/data" >/dev/null 2>&1 || { echo "FAIL tools_bucket: promtool"; exit 1; }
ULID=$(ls "$TMP/data" | head -1)

run_backend() { # config
	local cfg=$1
	"$S" tools bucket upload-blocks --objstore.config="$cfg" --path="$TMP/data" --label='cluster="eu1"' \
		--label='replica="r1"' >"$TMP/up.out" 2>"$TMP/up.err"
	check upload_blocks grep -q "uploaded 1 blocks" "$TMP/up.out"
	"$S" tools bucket ls --objstore.config="$cfg" >"$TMP/ls.out" 2>&1
	check ls test "$(cat "$TMP/ls.out")" = "$ULID"
	"$S" tools bucket ls --objstore.config="$cfg" -o json >"$TMP/ls.json" 2>&1
	check ls_json_labels /usr/bin/python3 -c "import json,sys; m=json.loads(open('$TMP/ls.json').readline()); \
assert m['thanos']['labels']=={'cluster':'eu1','replica':'r1'}, m; assert m['thanos']['source']=='bucket.upload'; \
assert [f['rel_path'] for f in m['thanos']['files']]==['chunks/000001','index','meta.json'], m"
	"$S" tools bucket inspect --objstore.config="$cfg" >"$TMP/inspect.out" 2>&1
	check inspect grep -q "$ULID.*| 2 .*| 480 .*{cluster=\"eu1\",replica=\"r1\"}" "$TMP/inspect.out"
	"$S" tools bucket verify --objstore.config="$cfg" >"$TMP/verify.out" 2>&1
	check verify_clean grep -q "verified 1 blocks: 0 issues" "$TMP/verify.out"
	"$S" tools bucket upload-blocks --objstore.config="$cfg" --path="$TMP/data" --label='cluster="eu1"' >"$TMP/up2.out" 2>/dev/null
	check upload_idempotent grep -q "uploaded 0 blocks, 1 already present" "$TMP/up2.out"
	"$S" tools bucket upload-blocks --objstore.config="$cfg" --path="$TMP/data" >/dev/null 2>&1
	check upload_needs_labels test $? = 2
	"$S" tools bucket ls --objstore.config="type: $BACKEND
config: {nope: 1}" >/dev/null 2>"$TMP/bad.err"
	check bad_config_names_key grep -q 'inline>:2:.*nope' "$TMP/bad.err"
}

BACKEND=FILESYSTEM
run_backend "type: FILESYSTEM
config: {directory: $TMP/fs}"
# A block whose index went missing is reported, never changed.
rm "$TMP/fs/$ULID/index"
"$S" tools bucket verify --objstore.config="type: FILESYSTEM
config: {directory: $TMP/fs}" >"$TMP/verify2.out" 2>&1
rc=$?
check verify_reports_missing_index test $rc = 1 -a -n "$(grep "issue=missing_file block=$ULID file=index" "$TMP/verify2.out")"

BACKEND=S3
if ! ENV=$("$SHARED/s3/start-s3" 2>"$TMP/start.log"); then
	echo "FAIL tools_bucket:S3: start-s3 failed: $(tail -3 "$TMP/start.log" | tr '\n' ' ')"
	exit 1
fi
eval "$ENV"
run_backend "type: S3
config:
  bucket: $S3_BUCKET
  endpoint: ${S3_ENDPOINT#http://}
  region: $S3_REGION
  access_key: $S3_ACCESS_KEY
  secret_key: $S3_SECRET_KEY
  insecure: true
prefix: tools"
exit $fail
