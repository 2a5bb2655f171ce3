#!/bin/bash
# bench/objstore_bench.sh — object storage benchmark (issue 5) against the S3 test server.
#
# 1. Parallel 16 KiB range GETs of one 64 MiB object: Strata's bucket_get_ranges (S3 backend, curl multi)
#    vs curl --parallel --parallel-max P with --aws-sigv4, both reading the same COUNT random ranges with
#    the same parallelism P (16 and 64). Every response is checked (206 and 16384 bytes for curl, the
#    piece length for Strata). 3 alternating rounds, medians; both timed from outside the process.
# 2. Upload of one UPLOAD_MIB file (default 1024 MiB, the issue's size): Strata's bucket_upload
#    (multipart with the default 64 MiB parts, Content-MD5 per part as send_content_md5's default) vs two
#    measures of the server's own write rate: one signed curl PUT of the whole file, and 4 curl PUTs
#    in parallel of its quarters (pre-split; as many streams as Strata keeps parts in flight). curl's
#    sha256 values are computed before timing. 3 alternating rounds, medians; the ratio the issue sets
#    (<= 1.2) is against the single PUT, the one against 4 parallel PUTs is printed too.
# Prints RESULT lines for bench/run. Env: OBJSTORE_BENCH_COUNT (default 3000), OBJSTORE_BENCH_UPLOAD_MIB.
set -euo pipefail
ROOT=${STRATA_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
S3_CTL=$ROOT/scripts/s3-server
HELPER=${STRATA_BENCH_BIN:-$ROOT/build/bench}/objstore_bench
COUNT=${OBJSTORE_BENCH_COUNT:-3000}
UPLOAD_MIB=${OBJSTORE_BENCH_UPLOAD_MIB:-1024}
LEN=16384
OBJ_MIB=64
[ -x "$HELPER" ] || { echo "objstore_bench: $HELPER not built" >&2; exit 1; }

TMP=$(mktemp -d /tmp/strata-objbench.XXXXXX)
S3_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
S3_DATA_DIR=$TMP/s3
export S3_PORT S3_DATA_DIR
cleanup() {
	"$S3_CTL" stop --purge >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
S3_ENV=$("$S3_CTL" start) || { echo "objstore_bench: s3-server start failed" >&2; exit 1; }
eval "$S3_ENV"
export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET S3_REGION
EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
curl_s3() { # METHOD KEY SHA256 [curl args...]
	local m=$1 k=$2 sha=$3
	shift 3
	curl -s -f --noproxy '*' -X "$m" --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H "x-amz-content-sha256: $sha" "$@" "$S3_ENDPOINT/$S3_BUCKET/$k"
}

# ---- 1. parallel range GETs ----
head -c $((OBJ_MIB << 20)) /dev/urandom >"$TMP/obj"
curl_s3 PUT bench/obj "$(sha256sum "$TMP/obj" | cut -d' ' -f1)" --data-binary @"$TMP/obj" -o /dev/null
curl_s3 GET bench/obj "$EMPTY" -o "$TMP/obj.back" # warm the server's page cache
cmp -s "$TMP/obj" "$TMP/obj.back" || { echo "objstore_bench: object read back differs" >&2; exit 1; }
rm -f "$TMP/obj.back"
"$HELPER" offsets $((OBJ_MIB << 20)) "$COUNT" $LEN 42 >"$TMP/offsets"

{
	first=1
	while read -r off; do
		[ $first = 1 ] || echo next
		first=0
		printf 'url = "%s/%s/bench/obj"\noutput = "/dev/null"\nnoproxy = "*"\n' "$S3_ENDPOINT" "$S3_BUCKET"
		printf 'aws-sigv4 = "aws:amz:%s:s3"\nuser = "%s:%s"\n' "$S3_REGION" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
		printf 'header = "x-amz-content-sha256: %s"\nheader = "Range: bytes=%d-%d"\n' "$EMPTY" "$off" $((off + LEN - 1))
		printf 'write-out = "%%{http_code} %%{size_download}\\n"\n'
	done <"$TMP/offsets"
} >"$TMP/curl.cfg"

for P in 16 64; do
	: >"$TMP/curl.t"
	: >"$TMP/strata.t"
	for round in 1 2 3; do
		t0=$(now)
		curl -s --parallel --parallel-max "$P" -K "$TMP/curl.cfg" >"$TMP/curl.out" 2>"$TMP/curl.err" || { cat "$TMP/curl.err" >&2; exit 1; }
		t1=$(now)
		bad=$(grep -cv "^206 $LEN\$" "$TMP/curl.out" || true)
		[ "$bad" = 0 ] && [ "$(wc -l <"$TMP/curl.out")" = "$COUNT" ] ||
			{ echo "objstore_bench: curl: $bad bad responses" >&2; exit 1; }
		echo "$t1 - $t0" | bc -l >>"$TMP/curl.t"
		t0=$(now)
		out=$("$HELPER" ranges bench/obj "$TMP/offsets" $LEN "$P")
		t1=$(now)
		echo "  round $round P=$P: curl $(tail -1 "$TMP/curl.t")s, strata $(echo "$t1 - $t0" | bc -l)s ($out)"
		echo "$t1 - $t0" | bc -l >>"$TMP/strata.t"
	done
	tc=$(median <"$TMP/curl.t")
	ts=$(median <"$TMP/strata.t")
	mb=$(echo "$COUNT * $LEN / 1048576" | bc -l)
	printf 'RESULT objstore_range_get_p%d_strata_rps %.0f req/s (%d x 16KiB, median of 3)\n' "$P" "$(echo "$COUNT / $ts" | bc -l)" "$COUNT"
	printf 'RESULT objstore_range_get_p%d_strata_mbps %.1f MiB/s\n' "$P" "$(echo "$mb / $ts" | bc -l)"
	printf 'RESULT objstore_range_get_p%d_curl_rps %.0f req/s\n' "$P" "$(echo "$COUNT / $tc" | bc -l)"
	printf 'RESULT objstore_range_get_p%d_curl_mbps %.1f MiB/s\n' "$P" "$(echo "$mb / $tc" | bc -l)"
	printf 'RESULT objstore_range_get_p%d_ratio %.2f x (strata rps / curl rps, target >= 1.0)\n' "$P" "$(echo "$tc / $ts" | bc -l)"
done
curl_s3 DELETE bench/obj "$EMPTY" -o /dev/null
rm -f "$TMP/obj" "$TMP/curl.cfg"

# ---- 2. upload of a large chunk file ----
head -c $((UPLOAD_MIB << 20)) /dev/urandom >"$TMP/chunk"
sha=$(sha256sum "$TMP/chunk" | cut -d' ' -f1)
QUARTER=$(((UPLOAD_MIB << 20) / 4))
split -b "$QUARTER" -d -a 1 "$TMP/chunk" "$TMP/quarter."
: >"$TMP/curl.cfg"
for q in 0 1 2 3; do
	[ $q = 0 ] || echo next >>"$TMP/curl.cfg"
	printf 'url = "%s/%s/bench/quarter-%d"
upload-file = "%s"
output = "/dev/null"
noproxy = "*"
fail
' \
		"$S3_ENDPOINT" "$S3_BUCKET" $q "$TMP/quarter.$q" >>"$TMP/curl.cfg"
	printf 'aws-sigv4 = "aws:amz:%s:s3"
user = "%s:%s"
header = "x-amz-content-sha256: %s"
' "$S3_REGION" \
		"$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$(sha256sum "$TMP/quarter.$q" | cut -d' ' -f1)" >>"$TMP/curl.cfg"
done
: >"$TMP/curl.t"
: >"$TMP/curlp.t"
: >"$TMP/strata.t"
for round in 1 2 3; do
	t0=$(now)
	curl_s3 PUT "bench/curl-$round" "$sha" -T "$TMP/chunk" -o /dev/null
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$TMP/curl.t"
	curl_s3 DELETE "bench/curl-$round" "$EMPTY" -o /dev/null
	t0=$(now)
	curl -s --no-progress-meter --parallel --parallel-max 4 -K "$TMP/curl.cfg" 2>"$TMP/curl.err" ||
		{ echo "objstore_bench: parallel curl PUTs failed: $(head -c 300 "$TMP/curl.err")" >&2; exit 1; }
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$TMP/curlp.t"
	for q in 0 1 2 3; do curl_s3 DELETE "bench/quarter-$q" "$EMPTY" -o /dev/null; done
	t0=$(now)
	out=$("$HELPER" upload "$TMP/chunk" "bench/strata-$round")
	t1=$(now)
	echo "$t1 - $t0" | bc -l >>"$TMP/strata.t"
	case "$out" in *"bytes $((UPLOAD_MIB << 20))") ;; *) echo "objstore_bench: upload: $out" >&2; exit 1 ;; esac
	curl_s3 DELETE "bench/strata-$round" "$EMPTY" -o /dev/null
	echo "  upload round $round: curl PUT $(tail -1 "$TMP/curl.t")s, 4 parallel curl PUTs $(tail -1 "$TMP/curlp.t")s, strata $(tail -1 "$TMP/strata.t")s"
done
tc=$(median <"$TMP/curl.t")
tp=$(median <"$TMP/curlp.t")
ts=$(median <"$TMP/strata.t")
printf 'RESULT objstore_upload_%dMiB_strata %.2f s (%.0f MiB/s, multipart, part_size 64 MiB, Content-MD5)\n' "$UPLOAD_MIB" "$ts" "$(echo "$UPLOAD_MIB / $ts" | bc -l)"
printf 'RESULT objstore_upload_%dMiB_curl_put %.2f s (%.0f MiB/s, one PUT: server write rate)\n' "$UPLOAD_MIB" "$tc" "$(echo "$UPLOAD_MIB / $tc" | bc -l)"
printf 'RESULT objstore_upload_%dMiB_curl_4_puts %.2f s (%.0f MiB/s, 4 parallel PUTs of the quarters)\n' "$UPLOAD_MIB" "$tp" "$(echo "$UPLOAD_MIB / $tp" | bc -l)"
printf 'RESULT objstore_upload_time_ratio %.2f x (strata / curl PUT, target <= 1.2)\n' "$(echo "$ts / $tc" | bc -l)"
printf 'RESULT objstore_upload_time_ratio_parallel %.2f x (strata / 4 parallel curl PUTs)\n' "$(echo "$ts / $tp" | bc -l)"
