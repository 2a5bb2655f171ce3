#!/bin/bash
# tls_bench.sh — what TLS and basic auth (--http.config) cost Strata's HTTP server, next to what they
# cost Prometheus 2.42 (--web.config.file, the same web configuration file and certificates).
#
# wrk on keep-alive connections against /-/healthy of tests/programs/http_testserver and of
# Prometheus, each plain, HTTPS, and HTTPS + basic auth (the bcrypt result is cached, so a request
# costs a SHA-256 and a lookup); then fresh connections (Connection: close) over HTTPS, where every
# request pays a full handshake (ECDSA P-256, TLS 1.3): there wrk's own client handshakes are the
# bottleneck, so the server's CPU time per connection is what is compared. Servers measured alternately, BENCH_ROUNDS
# rounds, medians. Reports req/s and the ratios https/plain per server and strata/prometheus.
# Knobs: BENCH_DURATION (default 5s per run), BENCH_ROUNDS (3), BENCH_CONNS (64), BENCH_THREADS (2).
. "$(dirname "$0")/../tests/integration/lib.sh"

DUR=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-2}
SRV=$STRATA_TEST_BIN/http_testserver
command -v wrk >/dev/null || { echo "wrk not installed (scripts/deps)"; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus not installed (scripts/deps)"; exit 1; }
[ -x "$SRV" ] || { echo "missing $SRV (make first)"; exit 1; }

CERTS=$TEST_TMP/certs
"$PY" -c "import sys; sys.path.insert(0, '$STRATA_ROOT/tests/integration'); from lib_tls import make_certs; make_certs('$CERTS')"
HASH=$("$PY" -c "import sys; sys.path.insert(0, '$STRATA_ROOT/tests/integration'); from lib_tls import bcrypt_hash; print(bcrypt_hash('bench-pass'))")
printf 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n' >"$CERTS/tls.yml"
printf 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  bench: %s\n' \
	"$HASH" >"$CERTS/auth.yml"
AUTH="Authorization: Basic $(printf 'bench:bench-pass' | base64)"
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' >"$TEST_TMP/prometheus.yml"

declare -A PORT
for mode in plain tls auth; do
	web=()
	[ "$mode" = tls ] && web=(--http.config="$CERTS/tls.yml")
	[ "$mode" = auth ] && web=(--http.config="$CERTS/auth.yml")
	PORT[strata_$mode]=$(free_port)
	start_bg "strata_$mode" "$SRV" --http-address=127.0.0.1:${PORT[strata_$mode]} --log.level=warn "${web[@]}"
	pweb=()
	[ "$mode" = tls ] && pweb=(--web.config.file="$CERTS/tls.yml")
	[ "$mode" = auth ] && pweb=(--web.config.file="$CERTS/auth.yml")
	PORT[prom_$mode]=$(free_port)
	start_bg "prom_$mode" prometheus --config.file="$TEST_TMP/prometheus.yml" --log.level=warn \
		--storage.tsdb.path="$TEST_TMP/prom-$mode" --web.listen-address=127.0.0.1:${PORT[prom_$mode]} "${pweb[@]}"
done
url() { # server mode
	local scheme=https
	[ "$2" = plain ] && scheme=http
	echo "$scheme://127.0.0.1:${PORT[$1_$2]}/-/healthy"
}
ready() { # server mode
	local h=()
	[ "$2" = auth ] && h=(-H "$AUTH")
	for _ in $(seq 1 120); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CERTS/ca.crt" "${h[@]}" "$(url "$1" "$2")")" = 200 ] && return 0
		sleep 0.5
	done
	echo "$1 $2 did not start"
	exit 1
}
for s in strata prom; do for m in plain tls auth; do ready $s $m; done; done

rps() { # server mode [wrk args...] -> requests/s
	local s=$1 m=$2
	shift 2
	local h=()
	[ "$m" = auth ] && h=(-H "$AUTH")
	wrk -t"$THREADS" -c"$CONNS" -d"$DUR" "${h[@]}" "$@" "$(url "$s" "$m")" >"$TEST_TMP/wrk.out" 2>&1
	cat "$TEST_TMP/wrk.out" >&2
	grep -q 'Non-2xx\|Socket errors' "$TEST_TMP/wrk.out" && echo "warning: errors during run" >&2
	awk '/^Requests\/sec:/ {print $2}' "$TEST_TMP/wrk.out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A R
for ((i = 1; i <= ROUNDS; i++)); do
	for s in strata prom; do
		for m in plain tls auth; do
			echo "--- round $i: $s $m keep-alive"
			R[${s}_$m]+=" $(rps $s $m)"
		done
		echo "--- round $i: $s tls new connection per request"
		pid=${BG_PID_OF[${s}_tls]}
		t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
		R[${s}_hs]+=" $(rps $s tls -H 'Connection: close')"
		t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
		n=$(awk '/requests in/ {print $1}' "$TEST_TMP/wrk.out")
		# server CPU per new connection (handshake + request), in ms: clock ticks are 10 ms
		R[${s}_hscpu]+=" $("$PY" -c "print('%.3f' % (($t1 - $t0) * 10.0 / max($n, 1)))")"
	done
done
declare -A M
for k in "${!R[@]}"; do
	# shellcheck disable=SC2086
	M[$k]=$(median ${R[$k]})
	echo "$k rounds:${R[$k]}"
done
ratio() { "$PY" -c "print('%.2f' % (${M[$1]} / ${M[$2]}))"; }
for s in strata prom; do
	name=$s
	[ $s = prom ] && name=prometheus
	echo "RESULT tls_${name}_http_rps ${M[${s}_plain]} req/s (median of $ROUNDS, wrk -t$THREADS -c$CONNS -d$DUR, keep-alive)"
	echo "RESULT tls_${name}_https_rps ${M[${s}_tls]} req/s (keep-alive)"
	echo "RESULT tls_${name}_https_auth_rps ${M[${s}_auth]} req/s (keep-alive, basic auth)"
	echo "RESULT tls_${name}_handshakes_rps ${M[${s}_hs]} req/s (a new TLS connection per request; wrk's own handshakes bound it)"
	echo "RESULT tls_${name}_handshake_cpu ${M[${s}_hscpu]} ms (server CPU per new TLS connection and its request)"
	echo "RESULT tls_${name}_https_over_http $(ratio ${s}_tls ${s}_plain) x (keep-alive)"
	echo "RESULT tls_${name}_auth_over_http $(ratio ${s}_auth ${s}_plain) x (keep-alive)"
done
echo "RESULT tls_https_strata_over_prometheus $(ratio strata_tls prom_tls) x (keep-alive HTTPS req/s)"
echo "RESULT tls_auth_strata_over_prometheus $(ratio strata_auth prom_auth) x (keep-alive HTTPS + basic auth)"
echo "RESULT tls_handshake_cpu_strata_over_prometheus $(ratio strata_hscpu prom_hscpu) x (server CPU per new connection; < 1: strata spends less)"
