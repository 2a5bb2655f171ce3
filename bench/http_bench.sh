#!/bin/bash
# http_bench.sh — requests/s of Strata's HTTP server (tests/programs/http_testserver, /-/healthy)
# against Prometheus 2.42's own /-/healthy, on the same machine in the same run, with wrk on
# keep-alive connections. Reports both rates and the ratio strata/prometheus.
#
# The machine is shared, so the two servers are measured alternately for BENCH_ROUNDS rounds and
# the median of each is reported.
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

sport=$(free_port)
start_bg strata "$SRV" --http-address=127.0.0.1:$sport --log.level=warn
pport=$(free_port)
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' >"$TEST_TMP/prometheus.yml"
start_bg prometheus prometheus --config.file="$TEST_TMP/prometheus.yml" \
	--storage.tsdb.path="$TEST_TMP/prom-data" --web.listen-address=127.0.0.1:$pport --log.level=warn
wait_url "http://127.0.0.1:$sport/-/ready" 20 || { echo "strata server did not start"; exit 1; }
wait_url "http://127.0.0.1:$pport/-/ready" 60 || { echo "prometheus did not start"; exit 1; }

rps() { # url -> requests/s
	wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$1" >"$TEST_TMP/wrk.out" 2>&1
	cat "$TEST_TMP/wrk.out" >&2
	grep -q 'Non-2xx\|Socket errors' "$TEST_TMP/wrk.out" && echo "warning: errors during run" >&2
	awk '/^Requests\/sec:/ {print $2}' "$TEST_TMP/wrk.out"
}

# Warm both up briefly, then measure alternately (strata, prometheus) to share any machine noise.
wrk -t1 -c4 -d1s "http://127.0.0.1:$sport/-/healthy" >/dev/null 2>&1
wrk -t1 -c4 -d1s "http://127.0.0.1:$pport/-/healthy" >/dev/null 2>&1
ss=() ps=()
for ((i = 1; i <= ROUNDS; i++)); do
	echo "--- round $i: strata /-/healthy"
	ss+=("$(rps "http://127.0.0.1:$sport/-/healthy")")
	echo "--- round $i: prometheus 2.42 /-/healthy"
	ps+=("$(rps "http://127.0.0.1:$pport/-/healthy")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "strata rounds: ${ss[*]}; prometheus rounds: ${ps[*]}"
s=$(median "${ss[@]}")
p=$(median "${ps[@]}")
[ -n "$s" ] && [ -n "$p" ] || { echo "could not parse wrk output"; exit 1; }
ratio=$("$PY" -c "print('%.2f' % ($s / $p))")
echo "RESULT http_healthy_strata_rps $s req/s (median of $ROUNDS, wrk -t$THREADS -c$CONNS -d$DUR, keep-alive)"
echo "RESULT http_healthy_prometheus_rps $p req/s (Prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'))"
echo "RESULT http_healthy_ratio $ratio x (strata / prometheus, same machine, same run)"
