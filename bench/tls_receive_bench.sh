#!/bin/bash
# tls_receive_bench.sh — what mutual TLS on the remote-write port (--remote-write.server-tls-cert/-key/
# -client-ca, ECDSA P-256 certificates from the openssl command, TLS 1.3) costs `strata receive`:
# two receivers, one plain HTTP and one HTTPS with client certificates, fed alternately by
# bench/receive_loadgen (keep-alive connections, requests of 2,000 samples, snappy, as Prometheus
# sends them; --tls-* for the HTTPS one), BENCH_ROUNDS rounds, medians. Every run writes a tenant of
# its own (fresh series, the same work each time). Reports the receiver's CPU-seconds per million
# samples and the loadgen's samples/s, each as mtls/plain.
# Knobs: BENCH_ROUNDS (3), SERIES (40000), ROUNDS (5 samples per series per run), CONCURRENCY (4).
. "$(dirname "$0")/../tests/integration/lib.sh"

BR=${BENCH_ROUNDS:-3}
N=${SERIES:-40000}
R=${ROUNDS:-5}
CC=${CONCURRENCY:-4}
LG=${STRATA_BENCH_BIN:-$STRATA_ROOT/build/bench}/receive_loadgen
[ -x "$LG" ] || { echo "missing $LG (make first)"; exit 1; }
CERTS=$TEST_TMP/certs
"$PY" -c "import sys; sys.path.insert(0, '$STRATA_ROOT/tests/integration'); from lib_tls import make_certs; make_certs('$CERTS')"

cpu_s() { awk '{printf "%.3f", ($14 + $15) / 100}' "/proc/$1/stat"; }
declare -A RW PID
for mode in plain mtls; do
	tls=()
	[ "$mode" = mtls ] && tls=(--remote-write.server-tls-cert="$CERTS/server.crt"
		--remote-write.server-tls-key="$CERTS/server.key" --remote-write.server-tls-client-ca="$CERTS/ca.crt")
	RW[$mode]=$(free_port)
	hp=$(free_port)
	start_bg "receive_$mode" "$STRATA_BIN" receive --tsdb.path="$TEST_TMP/$mode" --log.level=warn \
		--http-address=127.0.0.1:$hp --grpc-address=127.0.0.1:$(free_port) \
		--remote-write.address=127.0.0.1:${RW[$mode]} "${tls[@]}"
	PID[$mode]=${BG_PID_OF[receive_$mode]}
	wait_url "http://127.0.0.1:$hp/-/ready" 60 || { echo "receive ($mode) did not start"; exit 1; }
done

declare -A CPU RATE
for ((i = 1; i <= BR; i++)); do
	for mode in plain mtls; do
		args=(--url="http://127.0.0.1:${RW[$mode]}/api/v1/receive")
		[ "$mode" = mtls ] && args=(--url="https://127.0.0.1:${RW[$mode]}/api/v1/receive" --tls-ca="$CERTS/ca.crt"
			--tls-cert="$CERTS/client.crt" --tls-key="$CERTS/client.key")
		c0=$(cpu_s "${PID[$mode]}")
		out=$("$LG" write "${args[@]}" --tenant="run-$i" --series="$N" --rounds="$R" --concurrency="$CC") ||
			{ echo "loadgen ($mode) failed: $out"; exit 1; }
		c1=$(cpu_s "${PID[$mode]}")
		echo "--- round $i $mode: $out"
		samples=$(sed -n 's/.*samples=\([0-9]*\).*/\1/p' <<<"$out")
		failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$out")
		[ "$failed" = 0 ] || { echo "loadgen ($mode): $failed requests failed"; exit 1; }
		CPU[$mode]+="$("$PY" -c "print('%.3f' % (($c1 - $c0) / $samples * 1e6))") "
		RATE[$mode]+="$(sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p' <<<"$out") "
	done
done
median() { printf '%s\n' $@ | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pc=$(median ${CPU[plain]}) tc=$(median ${CPU[mtls]}) pr=$(median ${RATE[plain]}) tr=$(median ${RATE[mtls]})
echo "RESULT tls_receive_plain_cpu $pc cpu_s/1M samples (median of $BR, $N series x $R samples per run)"
echo "RESULT tls_receive_mtls_cpu $tc cpu_s/1M samples"
echo "RESULT tls_receive_cpu_mtls_over_plain $("$PY" -c "print('%.2f' % ($tc / $pc))") x (receiver CPU per sample)"
echo "RESULT tls_receive_plain_rate $pr samples/s"
echo "RESULT tls_receive_mtls_rate $tr samples/s"
echo "RESULT tls_receive_rate_mtls_over_plain $("$PY" -c "print('%.2f' % ($tr / $pr))") x (loadgen throughput)"
