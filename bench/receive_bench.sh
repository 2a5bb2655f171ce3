#!/bin/bash
# receive_bench.sh — `strata receive` vs Prometheus 2.42 (--web.enable-remote-write-receiver) under the
# identical remote-write load from bench/receive_loadgen (C; its own CPU is reported too):
#   ingest   samples per CPU-second of the receiving process (utime+stime from /proc), SERIES active
#            series x 8 labels, requests of 2,000 samples (snappy), after a first round that creates
#            the series (measured separately);
#   memory   RSS per active series after every series got ROUNDS samples at 15s (ROUNDS=480 is 2h);
#   restart  WAL replay after kill -9: seconds until /-/ready, Strata's logged replay time, and the
#            CPU-seconds the process used until ready (wall time on a loaded box mostly measures how
#            much of the CPU a process gets: Prometheus replays on many goroutines, Strata on fewer).
# Sizes: SERIES (default 100000), ROUNDS (default 40), CONCURRENCY (default 8). The issue's full
# setting is SERIES=1000000 ROUNDS=480 (Prometheus then needs about an hour of CPU on 2 cores).
# STRATA_ONLY=1 runs only the receiver (Prometheus at 1M x 480 needs an hour of CPU: compare it at a
# smaller scale), SKIP_RESTART=1 skips the kill -9 / replay part.
# Results: RESULT lines for bench/run. Check `uptime` first: other load skews CPU-second figures less
# than wall-clock ones, but it still does.
set -u
S=${STRATA_BIN:?}
LG=${STRATA_BENCH_BIN:-$(dirname "$S")/bench}/receive_loadgen
PY=${PYTHON:-/usr/bin/python3}
N=${SERIES:-100000}
R=${ROUNDS:-40}
C=${CONCURRENCY:-8}
TMP=$(mktemp -d /tmp/strata-receive-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() { for _ in $(seq 1 6000); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.1; done; return 1; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
START=$(( ($(date +%s) - R * 15 - 60) * 1000 / 15000 * 15000 ))
# Where the last round falls in the 2h chunk range decides how full the open chunks are when RSS is
# read. ALIGN_2H=1 starts at a 2h boundary: 480 rounds then end with every open chunk at 120 samples
# (3 full chunks mapped), the fullest a steady head gets; the same every run.
[ -n "${ALIGN_2H:-}" ] && START=$(( START / 7200000 * 7200000 ))

start_strata() { # dir -> pid, ports in SP (remote write), SH (http)
	SP=$(port) SH=$(port)
	"$S" receive --tsdb.path="$1" --remote-write.address=127.0.0.1:$SP --http-address=127.0.0.1:$SH \
		--grpc-address=127.0.0.1:$(port) >>"$TMP/strata.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_url "http://127.0.0.1:$SH/-/ready" || { echo "strata receive did not start"; exit 1; }
	URL="http://127.0.0.1:$SP/api/v1/receive"
	READY="http://127.0.0.1:$SH/-/ready"
}
start_prom() { # dir
	SP=$(port)
	echo "global: {scrape_interval: 1h}" >"$TMP/p.yml"
	prometheus --config.file="$TMP/p.yml" --storage.tsdb.path="$1" --web.listen-address=127.0.0.1:$SP \
		--web.enable-remote-write-receiver --storage.tsdb.retention.time=30d >>"$TMP/prom.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_url "http://127.0.0.1:$SP/-/ready" || { echo "prometheus did not start"; exit 1; }
	URL="http://127.0.0.1:$SP/api/v1/write"
	READY="http://127.0.0.1:$SP/-/ready"
}

run() { # name start_fn
	local name=$1
	$2 "$TMP/$name"
	local c0 c1 c2
	c0=$(cpu_s "$PID")
	"$LG" write --url="$URL" --series="$N" --rounds=1 --start="$START" --concurrency="$C" | tee "$TMP/$name.lg0"
	c1=$(cpu_s "$PID")
	"$LG" write --url="$URL" --series="$N" --rounds=$((R - 1)) --start=$((START + 15000)) --concurrency="$C" |
		tee "$TMP/$name.lg1"
	c2=$(cpu_s "$PID")
	local rss
	rss=$(rss_kb "$PID")
	grep -E 'VmHWM|RssAnon|RssFile' "/proc/$PID/status" | tr -s ' \t' ' ' | tr '\n' ' '
	echo
	local samples=$((N * (R - 1)))
	eval "${name}_create=\$(echo \"$N / ($c1 - $c0 + 0.001)\" | bc -l)"
	eval "${name}_ingest=\$(echo \"$samples / ($c2 - $c1 + 0.001)\" | bc -l)"
	eval "${name}_bps=\$(echo \"$rss * 1024 / $N\" | bc -l)"
	echo "$name: create ${N} series: $(echo "$c1 - $c0" | bc) CPU-s; ingest $samples samples: $(echo "$c2 - $c1" | bc) CPU-s; RSS ${rss} KiB"
	if [ -n "${SKIP_RESTART:-}" ]; then
		eval "${name}_restart=0 ${name}_restart_cpu=0"
		kill -9 "$PID"
		wait "$PID" 2>/dev/null
		return
	fi
	# restart: kill -9, time until ready
	kill -9 "$PID"
	wait "$PID" 2>/dev/null
	local t0
	t0=$(date +%s.%N)
	$2 "$TMP/$name"
	eval "${name}_restart=\$(echo \"$(date +%s.%N) - $t0\" | bc -l)"
	eval "${name}_restart_cpu=$(cpu_s "$PID")" # CPU of the whole start, replay included
	kill -9 "$PID"
	wait "$PID" 2>/dev/null
}

echo "load: $N series x 8 labels, $R rounds of one 15s sample from $START (2h phase $(( START % 7200000 / 15000 )) rounds), requests of 2000 samples, $C connections ($(uptime))"
run strata start_strata
if [ -n "${STRATA_ONLY:-}" ]; then
	replay=$(grep -o 'wal_replay_seconds=[0-9.]*' "$TMP/strata.log" | tail -1 | cut -d= -f2)
	printf 'RESULT receive_ingest_strata %.0f samples/cpu-s %s series\n' "$strata_ingest" "$N"
	printf 'RESULT receive_bytes_per_series_strata %.0f bytes RSS after %s samples each\n' "$strata_bps" "$R"
	[ -z "${SKIP_RESTART:-}" ] && printf 'RESULT receive_restart_strata %.2f s to ready after kill -9 (WAL replay %s s, %.2f CPU-s)\n' "$strata_restart" "$replay" "$strata_restart_cpu"
	printf 'RESULT receive_loadgen %s\n' "$(grep -o 'loadgen_samples_per_cpu_s=[0-9]*' "$TMP/strata.lg1")"
	exit 0
fi
run prom start_prom
replay=$(grep -o 'wal_replay_seconds=[0-9.]*' "$TMP/strata.log" | tail -1 | cut -d= -f2)
printf 'RESULT receive_ingest_strata %.0f samples/cpu-s %s series\n' "$strata_ingest" "$N"
printf 'RESULT receive_ingest_prometheus %.0f samples/cpu-s %s series\n' "$prom_ingest" "$N"
printf 'RESULT receive_ingest_ratio %.2f x strata/prometheus samples per CPU-second\n' "$(echo "$strata_ingest / $prom_ingest" | bc -l)"
printf 'RESULT receive_series_create_ratio %.2f x strata/prometheus new series per CPU-second\n' "$(echo "$strata_create / $prom_create" | bc -l)"
printf 'RESULT receive_bytes_per_series_strata %.0f bytes RSS after %s samples each\n' "$strata_bps" "$R"
printf 'RESULT receive_bytes_per_series_prometheus %.0f bytes RSS after %s samples each\n' "$prom_bps" "$R"
printf 'RESULT receive_memory_ratio %.2f x strata/prometheus RSS per series\n' "$(echo "$strata_bps / $prom_bps" | bc -l)"
printf 'RESULT receive_restart_strata %.2f s to ready after kill -9 (WAL replay %s s)\n' "$strata_restart" "$replay"
printf 'RESULT receive_restart_prometheus %.2f s to ready after kill -9\n' "$prom_restart"
printf 'RESULT receive_restart_cpu_strata %.2f CPU-s to ready after kill -9\n' "$strata_restart_cpu"
printf 'RESULT receive_restart_cpu_prometheus %.2f CPU-s to ready after kill -9\n' "$prom_restart_cpu"
printf 'RESULT receive_restart_cpu_ratio %.2f x strata/prometheus CPU-seconds to ready\n' "$(echo "$strata_restart_cpu / $prom_restart_cpu" | bc -l)"
printf 'RESULT receive_loadgen %s\n' "$(grep -o 'loadgen_samples_per_cpu_s=[0-9]*' "$TMP/strata.lg1")"
