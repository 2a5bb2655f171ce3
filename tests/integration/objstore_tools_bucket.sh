#!/bin/bash
# `strata tools bucket upload-blocks` of a promtool-made block, then ls / inspect / verify, on
# FILESYSTEM and on a private S3 server; then verify against the block damaged in the bucket in several
# ways (each must be reported with the block ULID and what is wrong, exit 1; the restored block passes
# again). Prints PASS/FAIL lines.
set -u
S=${STRATA_BIN:?}
S3_CTL=${STRATA_ROOT:?}/scripts/s3-server
TMP=$(mktemp -d /tmp/strata-tools-bucket.XXXXXX)
S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export S3_PORT S3_DATA_DIR=$TMP/s3
trap 'S3_DATA_DIR=$TMP/s3 "$S3_CTL" stop --purge >/dev/null 2>&1; rm -rf "$TMP"' EXIT
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
cat >"$TMP/corrupt.py" <<'PYEOF'
# corrupt.py KIND FILE — damages one file of a block in place, for the verify test.
#   index_crc      flip a bit of the first series entry's CRC32C in the index
#   series_order   swap the last label value of the first two series (CRCs recomputed): out of order
#   chunk_crc      flip a bit inside the first chunk record's data
#   truncate       keep only the first half of a chunk segment file
#   meta_maxtime   set meta.json maxTime to minTime + 1000 (chunks now end after the block)
#   meta_series    add 1 to meta.json numSeries
import json, struct, sys

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def uvarint(b, i):
    x = s = 0
    while True:
        c = b[i]; i += 1
        x |= (c & 0x7F) << s; s += 7
        if c < 0x80:
            return x, i

def series_entries(b):
    off = struct.unpack('>Q', b[len(b) - 52 + 8:len(b) - 52 + 16])[0]
    end = struct.unpack('>Q', b[len(b) - 52 + 16:len(b) - 52 + 24])[0]  # label indices follow
    out = []
    off = (off + 15) // 16 * 16  # every entry starts 16-byte aligned
    while off < end:
        n, start = uvarint(b, off)
        if n == 0:
            break
        out.append((start, n))  # content at [start, start+n), CRC after it
        off = (start + n + 4 + 15) // 16 * 16
    return out

kind, path = sys.argv[1], sys.argv[2]
b = bytearray(open(path, 'rb').read())
if kind == 'index_crc':
    start, n = series_entries(b)[0]
    b[start + n] ^= 0x01
elif kind == 'series_order':
    ents = series_entries(b)[:2]
    pos = []
    for start, n in ents:
        nl, i = uvarint(b, start)
        for _ in range(2 * nl - 1):
            _, i = uvarint(b, i)
        v, j = uvarint(b, i)
        pos.append((i, j, v))
    (i0, j0, v0), (i1, j1, v1) = pos
    assert v0 != v1 and j0 - i0 == j1 - i1, 'cannot swap'
    b[i0:j0], b[i1:j1] = bytes(b[i1:j1]), bytes(b[i0:j0])
    for start, n in ents:
        b[start + n:start + n + 4] = struct.pack('>I', crc32c(bytes(b[start:start + n])))
elif kind == 'chunk_crc':
    n, i = uvarint(b, 8)
    b[i + 1 + n // 2] ^= 0x10
elif kind == 'truncate':
    b = b[:len(b) // 2]
elif kind in ('meta_maxtime', 'meta_series'):
    m = json.loads(b)
    if kind == 'meta_maxtime':
        m['maxTime'] = m['minTime'] + 1000
    else:
        m['stats']['numSeries'] += 1
    b = json.dumps(m, indent='\t').encode()
else:
    sys.exit('unknown corruption ' + kind)
open(path, 'wb').write(b)
PYEOF

# damage NAME KIND FILE ISSUE: replace the block's FILE in the bucket with a damaged copy (get_obj/put_obj
# of the backend), run verify, expect exit 1 and a line "issue=ISSUE block=ULID ...", put the original back.
damage() {
	local n=$1 kind=$2 file=$3 want=$4
	if ! get_obj "$file" "$TMP/orig.$n"; then
		echo "FAIL tools_bucket:$BACKEND:verify_$n: cannot read $file from the bucket"
		fail=1
		return
	fi
	cp "$TMP/orig.$n" "$TMP/damaged.$n"
	/usr/bin/python3 "$TMP/corrupt.py" "$kind" "$TMP/damaged.$n"
	put_obj "$file" "$TMP/damaged.$n"
	"$S" tools bucket verify --objstore.config="$CFG" >"$TMP/verify.$n" 2>&1
	local rc=$?
	check "verify_$n" test $rc = 1 -a -n "$(grep -E "^issue=$want block=$ULID " "$TMP/verify.$n")"
	[ $rc = 1 ] && grep -q "^issue=$want block=$ULID " "$TMP/verify.$n" || { echo "# exit $rc:"; sed 's/^/# /' "$TMP/verify.$n"; }
	put_obj "$file" "$TMP/orig.$n"
}

damage_all() {
	damage index_crc index_crc index index_corrupt
	damage series_order series_order index series_out_of_order
	damage chunk_ref_past_end truncate chunks/000001 chunk_ref_out_of_bounds
	damage chunk_crc chunk_crc chunks/000001 chunk_crc_mismatch
	damage meta_maxtime meta_maxtime meta.json chunk_outside_block
	damage meta_num_series meta_series meta.json stats_mismatch
	"$S" tools bucket verify --objstore.config="$CFG" >"$TMP/verify.restored" 2>&1
	check verify_restored_clean grep -q "verified 1 blocks: 0 issues" "$TMP/verify.restored"
	"$S" tools bucket verify --objstore.config="$CFG" --repair >/dev/null 2>"$TMP/repair.err"
	check verify_refuses_repair test $? = 2 -a -n "$(grep 'not supported' "$TMP/repair.err")"
	"$S" tools bucket verify --objstore.config="$CFG" --id="$ULID" >"$TMP/verify.id" 2>&1
	check verify_id grep -q "verified 1 blocks: 0 issues" "$TMP/verify.id"
	"$S" tools bucket verify --objstore.config="$CFG" --id=01ARZ3NDEKTSV4RRFFQ69G5FAV >/dev/null 2>"$TMP/id.err"
	check verify_unknown_id test $? = 1 -a -n "$(grep 01ARZ3NDEKTSV4RRFFQ69G5FAV "$TMP/id.err")"
}

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
CFG="type: FILESYSTEM
config: {directory: $TMP/fs}"
run_backend "$CFG"
get_obj() { cp "$TMP/fs/$ULID/$1" "$2"; }
put_obj() { cp "$2" "$TMP/fs/$ULID/$1"; }
damage_all
# A block whose index went missing is reported, never changed.
rm "$TMP/fs/$ULID/index"
"$S" tools bucket verify --objstore.config="type: FILESYSTEM
config: {directory: $TMP/fs}" >"$TMP/verify2.out" 2>&1
rc=$?
check verify_reports_missing_index test $rc = 1 -a -n "$(grep "issue=missing_file block=$ULID file=index" "$TMP/verify2.out")"

BACKEND=S3
if ! ENV=$("$S3_CTL" start 2>"$TMP/start.log"); then
	echo "FAIL tools_bucket:S3: s3-server start failed: $(tail -3 "$TMP/start.log" | tr '\n' ' ')"
	exit 1
fi
eval "$ENV"
CFG="type: S3
config:
  bucket: $S3_BUCKET
  endpoint: ${S3_ENDPOINT#http://}
  region: $S3_REGION
  access_key: $S3_ACCESS_KEY
  secret_key: $S3_SECRET_KEY
  insecure: true
prefix: tools"
run_backend "$CFG"
s3_curl() { # METHOD FILE SHA256 [curl args...]
	local m=$1 f=$2 sha=$3
	shift 3
	curl -s -f --noproxy '*' -X "$m" --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H "x-amz-content-sha256: $sha" "$@" "$S3_ENDPOINT/$S3_BUCKET/tools/$ULID/$f"
}
get_obj() { s3_curl GET "$1" e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 -o "$2"; }
put_obj() { s3_curl PUT "$1" "$(sha256sum "$2" | cut -d' ' -f1)" --data-binary @"$2" -o /dev/null; }
damage_all
exit $fail
