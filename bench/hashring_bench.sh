#!/bin/bash
# hashring_bench.sh — what routing between receivers costs, under the same remote-write load from
# bench/receive_loadgen (SERIES series x 8 labels, requests of 2,000 samples, a first round creating
# the series, then ROUNDS-1 measured rounds):
#   router     samples per CPU-second of a router-only receiver forwarding to two ingestors (hashmod,
#              replication factor 1) vs an ingestor written to directly; floor: the router costs
#              <= 0.5x an ingestor's CPU per sample; once more with --receive.grpc-compression=none;
#   rf3        three local router+ingestors (ketama), replication factor 3 vs 1: CPU per sample summed
#              over the three processes, and p50/p99 write latency seen by the load generator.
# Sizes: SERIES (default 50000), ROUNDS (default 11), CONCURRENCY (default 8). CPU is utime+stime from
# /proc of each receiver. Check `uptime` first. HASHRING_BENCH_ONLY=router runs the direct and router
# parts only; HASHRING_BENCH_PERF=<file> records the router's measured rounds with perf (HASHRING_BENCH_PERF_ARGS, default -g;
# HASHRING_BENCH_PERF_RUN=n: the uncompressed run instead; HASHRING_BENCH_PERF_PROC=ingestor: the first
# ingestor behind the router instead).
set -u
S=${STRATA_BIN:?}
LG=${STRATA_BENCH_BIN:-$(dirname "$S")/bench}/receive_loadgen
PY=${PYTHON:-/usr/bin/python3}
N=${SERIES:-50000}
R=${ROUNDS:-11}
C=${CONCURRENCY:-8}
TMP=$(mktemp -d /tmp/strata-hashring-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() { for _ in $(seq 1 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.1; done; return 1; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
# ctx_sw PID: context switches (voluntary and not) summed over the process's threads, then the most of one thread
ctx_sw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{t=v+$2; s+=t; if (t>m) m=t} END{print s+0, m+0}'; }
START=$(( ($(date +%s) - R * 15 - 60) * 1000 / 15000 * 15000 ))

# start NAME [flags...]: a receiver; sets PID_<NAME>, GRPC_<NAME>, URL_<NAME>
start() {
	local name=$1
	shift
	local rw=$(port) http=$(port) grpc=${GRPCPORT:-$(port)}
	"$S" receive --tsdb.path="$TMP/$name" --remote-write.address=127.0.0.1:$rw --http-address=127.0.0.1:$http \
		--grpc-address=127.0.0.1:$grpc "$@" >>"$TMP/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	wait_url "http://127.0.0.1:$http/-/ready" || { echo "receiver $name did not start"; cat "$TMP/$name.log"; exit 1; }
	eval "PID_$name=$pid URL_$name=http://127.0.0.1:$rw/api/v1/receive"
}
stop_all() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	PIDS=()
}
ring() { # file algo ports...
	local f=$1 algo=$2
	shift 2
	local eps=""
	for p in "$@"; do eps="$eps${eps:+,}\"127.0.0.1:$p\""; done
	echo "[{\"hashring\":\"default\",\"algorithm\":\"$algo\",\"endpoints\":[$eps]}]" >"$f"
}
# measure URL pids...: create round, then the measured rounds; sets CPU (sum over pids) and LGOUT
measure() {
	local url=$1
	shift
	"$LG" write --url="$url" --series="$N" --rounds=1 --start="$START" --concurrency="$C" >/dev/null
	local c0=0 c1=0 p
	for p in "$@"; do c0=$(echo "$c0 + $(cpu_s "$p")" | bc); done
	LGOUT=$("$LG" write --url="$url" --series="$N" --rounds=$((R - 1)) --start=$((START + 15000)) --concurrency="$C")
	echo "  $LGOUT"
	for p in "$@"; do c1=$(echo "$c1 + $(cpu_s "$p")" | bc); done
	CPU=$(echo "$c1 - $c0" | bc)
}
SAMPLES=$((N * (R - 1)))
per_sample() { echo "$SAMPLES / ($1 + 0.001)" | bc -l; }
lat() { echo "$LGOUT" | grep -o "$1=[0-9.]*" | cut -d= -f2; }

echo "load: $N series x 8 labels, $((R - 1)) measured rounds, requests of 2000 samples, $C connections ($(uptime))"

# ---- direct: one ingestor ----
start direct
measure "$URL_direct" "$PID_direct"
direct=$(per_sample "$CPU")
echo "direct ingestor: $SAMPLES samples in $CPU CPU-s"
stop_all

# router_run SUFFIX [router flags...]: a router only in front of two ingestors (hashmod, RF 1); sets
# ROUTER (the router's samples per CPU-second) and INGESTORS (the two ingestors')
router_run() {
	local x=$1
	shift
	local g1=$(port) g2=$(port)
	ring "$TMP/ring2$x.json" hashmod "$g1" "$g2"
	GRPCPORT=$g1 start "ing1$x" --receive.hashrings-file="$TMP/ring2$x.json" --receive.local-endpoint=127.0.0.1:$g1
	GRPCPORT=$g2 start "ing2$x" --receive.hashrings-file="$TMP/ring2$x.json" --receive.local-endpoint=127.0.0.1:$g2
	start "router$x" --receive.hashrings-file="$TMP/ring2$x.json" "$@"
	eval "local rp=\$PID_router$x url=\$URL_router$x i1=\$PID_ing1$x i2=\$PID_ing2$x"
	local c0 c1 perfpid= s0 s1
	c0=$(cpu_s "$rp")
	s0=$(ctx_sw "$rp")
	if [ -n "${HASHRING_BENCH_PERF:-}" ] && [ "$x" = "${HASHRING_BENCH_PERF_RUN:-}" ]; then
		local target=$rp
		[ "${HASHRING_BENCH_PERF_PROC:-}" = ingestor ] && target=$i1
		perf record ${HASHRING_BENCH_PERF_ARGS:--g} -o "$HASHRING_BENCH_PERF" -p "$target" >/dev/null 2>&1 &
		perfpid=$!
		sleep 0.5
	fi
	measure "$url" "$i1" "$i2"
	c1=$(cpu_s "$rp")
	s1=$(ctx_sw "$rp")
	[ -n "$perfpid" ] && { kill -INT "$perfpid"; wait "$perfpid"; }
	ROUTER=$(per_sample "$(echo "$c1 - $c0" | bc)")
	INGESTORS=$(per_sample "$CPU")
	echo "router $*: $SAMPLES samples in $(echo "$c1 - $c0" | bc) CPU-s (its ingestors: $CPU CPU-s)"
	local reqs=$((SAMPLES / 2000))
	echo "$s0 $s1" | awk -v q=$reqs '{printf "  router context switches per request: %.2f (the busiest thread, the HTTP loop: %.2f)\n", ($3 - $1) / q, ($4 - $2) / q}'

	stop_all
}
router_run ""
router=$ROUTER ingestors=$INGESTORS
router_run n --receive.grpc-compression=none
routern=$ROUTER

if [ "${HASHRING_BENCH_ONLY:-}" = router ]; then
	printf 'RESULT hashring_direct_ingest %.0f samples/cpu-s one ingestor written directly\n' "$direct"
	printf 'RESULT hashring_router_forward %.0f samples/cpu-s router-only forwarding to two ingestors\n' "$router"
	printf 'RESULT hashring_router_cost_ratio %.2f x router/ingestor CPU per sample (floor <= 0.5)\n' "$(echo "$direct / $router" | bc -l)"
	printf 'RESULT hashring_router_cost_ratio_uncompressed %.2f x router/ingestor CPU per sample, --receive.grpc-compression=none\n' "$(echo "$direct / $routern" | bc -l)"
	exit 0
fi

# ---- three nodes, RF 3 vs RF 1 ----
for rf in 1 3; do
	G1=$(port) G2=$(port) G3=$(port)
	ring "$TMP/ring3-$rf.json" ketama "$G1" "$G2" "$G3"
	for k in 1 2 3; do
		eval "g=\$G$k"
		GRPCPORT=$g start "n${rf}_$k" --receive.hashrings-file="$TMP/ring3-$rf.json" \
			--receive.local-endpoint=127.0.0.1:$g --receive.replication-factor=$rf
	done
	eval "u=\$URL_n${rf}_1 p1=\$PID_n${rf}_1 p2=\$PID_n${rf}_2 p3=\$PID_n${rf}_3"
	measure "$u" "$p1" "$p2" "$p3"
	eval "rf${rf}_cpu=$CPU rf${rf}_p50=$(lat p50_ms) rf${rf}_p99=$(lat p99_ms)"
	echo "three nodes, RF $rf: $SAMPLES samples in $CPU CPU-s over the three"
	stop_all
done
rf1=$(per_sample "$rf1_cpu")
rf3=$(per_sample "$rf3_cpu")

printf 'RESULT hashring_direct_ingest %.0f samples/cpu-s one ingestor written directly\n' "$direct"
printf 'RESULT hashring_router_forward %.0f samples/cpu-s router-only forwarding to two ingestors\n' "$router"
printf 'RESULT hashring_router_cost_ratio %.2f x router/ingestor CPU per sample (floor <= 0.5)\n' "$(echo "$direct / $router" | bc -l)"
printf 'RESULT hashring_router_cost_ratio_uncompressed %.2f x router/ingestor CPU per sample, --receive.grpc-compression=none\n' "$(echo "$direct / $routern" | bc -l)"
printf 'RESULT hashring_ingestors_behind_router %.0f samples/cpu-s the two ingestors together\n' "$ingestors"
printf 'RESULT hashring_rf3_vs_rf1_cpu %.2f x CPU per sample over three nodes, RF 3 / RF 1\n' "$(echo "$rf1 / $rf3" | bc -l)"
printf 'RESULT hashring_rf1_p99 %s ms write latency (p50 %s ms), three nodes RF 1\n' "$rf1_p99" "$rf1_p50"
printf 'RESULT hashring_rf3_p99 %s ms write latency (p50 %s ms), three nodes RF 3\n' "$rf3_p99" "$rf3_p50"
