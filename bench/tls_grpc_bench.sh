#!/bin/bash
# tls_grpc_bench.sh — what mutual TLS costs StoreAPI over gRPC: bench/store_grpc (an in-memory store
# served by the gRPC server in a child process, streamed by the StoreAPI client) plaintext h2c and
# with mutual TLS (--grpc-server-tls-* / --grpc-client-tls-*: ECDSA P-256 certificates from the openssl
# command, TLS 1.3), alternately, BENCH_ROUNDS rounds, medians. Reports Series throughput (series/s
# streamed and iterated) and the latency of a one-series query, each as mtls/plaintext.
# Knobs: BENCH_ROUNDS (3), BENCH_SERIES (100000).
. "$(dirname "$0")/../tests/integration/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
SERIES=${BENCH_SERIES:-100000}
BIN=${STRATA_BENCH_BIN:-$STRATA_ROOT/build/bench}/store_grpc
[ -x "$BIN" ] || { echo "missing $BIN (make first)"; exit 1; }
CERTS=$TEST_TMP/certs
"$PY" -c "import sys; sys.path.insert(0, '$STRATA_ROOT/tests/integration'); from lib_tls import make_certs; make_certs('$CERTS')"

val() { awk -v k="$1" '$1 == "RESULT" && $2 == k {print $3}' "$2"; }
plain_s=() tls_s=() plain_l=() tls_l=()
for ((i = 1; i <= ROUNDS; i++)); do
	echo "--- round $i: plaintext"
	"$BIN" "$SERIES" >"$TEST_TMP/plain.out" 2>&1 || { cat "$TEST_TMP/plain.out"; exit 1; }
	grep -E 'store_grpc_(grpc_series|latency_grpc) ' "$TEST_TMP/plain.out"
	plain_s+=("$(val store_grpc_grpc_series "$TEST_TMP/plain.out")")
	plain_l+=("$(val store_grpc_latency_grpc "$TEST_TMP/plain.out")")
	echo "--- round $i: mutual TLS"
	"$BIN" "$SERIES" "$CERTS" >"$TEST_TMP/tls.out" 2>&1 || { cat "$TEST_TMP/tls.out"; exit 1; }
	grep -E 'store_grpc_mtls_(grpc_series|latency_grpc) ' "$TEST_TMP/tls.out"
	tls_s+=("$(val store_grpc_mtls_grpc_series "$TEST_TMP/tls.out")")
	tls_l+=("$(val store_grpc_mtls_latency_grpc "$TEST_TMP/tls.out")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ps=$(median "${plain_s[@]}") ts=$(median "${tls_s[@]}") pl=$(median "${plain_l[@]}") tl=$(median "${tls_l[@]}")
echo "RESULT tls_grpc_plain_series $ps series/s (median of $ROUNDS, $SERIES series x 240 samples)"
echo "RESULT tls_grpc_mtls_series $ts series/s"
echo "RESULT tls_grpc_series_mtls_over_plain $("$PY" -c "print('%.2f' % ($ts / $ps))") x (Series throughput)"
echo "RESULT tls_grpc_plain_latency $pl us (one series of 100, median)"
echo "RESULT tls_grpc_mtls_latency $tl us"
echo "RESULT tls_grpc_latency_mtls_over_plain $("$PY" -c "print('%.2f' % ($tl / $pl))") x (one-series query latency)"
