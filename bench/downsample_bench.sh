#!/bin/bash
# bench/downsample_bench.sh — downsampling throughput and memory, and what downsampled data buys a
# dashboard (issue 16).
#
# 1. Downsampling: a 2-day raw block (SERIES series, one sample a minute: 24 2h blocks of
#    bench/storegw_blockgen merged by bench/compact_merge) to 5m with bench/downsample_block: raw
#    samples per CPU second, peak RSS, and peak RSS again at 4x the series (flat in block size).
# 2. A 30-day dashboard at a 1h step over DAYS days of QSERIES series scraped every INTERVAL_MS
#    (default 15s, Prometheus's usual scrape interval), 2h blocks compacted and
#    downsampled by one `strata compact` run: `strata query` (--query.auto-downsampling) over
#    `strata store` answering from raw data only (max_source_resolution=0s) vs auto (step / 5 = 12m:
#    5m data), and Prometheus 2.42 answering from the same raw 2h blocks (its compaction off); median
#    of ROUNDS rounds, the three alternating.
set -u
cd "$(dirname "$0")/.."
: "${STRATA_BIN:=$PWD/build/strata}"
: "${STRATA_BENCH_BIN:=$PWD/build/bench}"
SERIES=${SERIES:-20000}
QSERIES=${QSERIES:-300}
DAYS=${DAYS:-30}
INTERVAL_MS=${INTERVAL_MS:-15000}
ROUNDS=${ROUNDS:-3}
T=$(mktemp -d /tmp/strata-downsample-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"' EXIT
PY=/usr/bin/python3
H=$((3600 * 1000))
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { local i; for ((i = 0; i < 600; i++)); do curl -sf "http://127.0.0.1:$1/-/ready" >/dev/null && return 0; sleep 0.2; done; return 1; }
echo "uptime: $(uptime)"

# ---- 1. downsampling throughput and RSS ----
ds_run() { # series -> "cpu_seconds maxrss_kb samples_in"
	local d=$T/ds$1 end=$(( ($(date +%s) / 172800 - 2) * 172800 * 1000 ))
	mkdir -p "$d"
	"$STRATA_BENCH_BIN/storegw_blockgen" "$d/2h" 24 "$1" "$end" >/dev/null || return 1
	"$STRATA_BENCH_BIN/compact_merge" "$d/2d" "$d"/2h/* >/dev/null || return 1
	rm -rf "$d/2h"
	"$STRATA_BENCH_BIN/downsample_block" "$d/5m" "$d"/2d/* | awk '{print $10, $12, $4}'
}
read -r c1 r1 n1 < <(ds_run "$SERIES")
read -r c4 r4 n4 < <(ds_run $((4 * SERIES)))
echo "downsampling: $n1 raw samples in ${c1}s CPU, peak RSS ${r1} KiB; 4x series: $n4 in ${c4}s, ${r4} KiB"

# ---- 2. the dashboard ----
end=$(( ($(date +%s) * 1000 - 4 * H) / (2 * H) * (2 * H) ))
mkdir -p "$T/raw" "$T/bucket" "$T/prom"
"$STRATA_BENCH_BIN/storegw_blockgen" "$T/raw" $((DAYS * 12)) "$QSERIES" "$end" "$INTERVAL_MS" >/dev/null || exit 1
cp -r "$T"/raw/* "$T/prom/"
CFG="type: FILESYSTEM
config: {directory: $T/bucket}"
"$STRATA_BIN" tools bucket upload-blocks --objstore.config="$CFG" --path="$T/raw" --label='cluster="bench"' >/dev/null 2>&1
t0=$(date +%s.%N)
"$STRATA_BIN" compact --objstore.config="$CFG" --data-dir="$T/cdata" --consistency-delay=0s --delete-delay=0s \
	--http-address="127.0.0.1:$(free_port)" >"$T/compact.log" 2>&1 || { echo "compact failed: $(tail -3 "$T/compact.log")"; exit 1; }
echo "compaction + downsampling of $((DAYS * 12)) blocks: $("$PY" -c "print(round($(date +%s.%N) - $t0, 1))")s"
"$STRATA_BIN" tools bucket inspect --objstore.config="$CFG" 2>/dev/null | awk -F'|' 'NR > 1 {print $11}' | sort | uniq -c
gp=$(free_port) hp=$(free_port) qp=$(free_port) qg=$(free_port) pp=$(free_port)
"$STRATA_BIN" store --objstore.config="$CFG" --data-dir="$T/sd" --grpc-address="127.0.0.1:$gp" \
	--http-address="127.0.0.1:$hp" >"$T/store.log" 2>&1 &
PIDS+=($!)
wait_ready "$hp" || { echo "store not ready"; exit 1; }
"$STRATA_BIN" query --endpoint="127.0.0.1:$gp" --http-address="127.0.0.1:$qp" --grpc-address="127.0.0.1:$qg" \
	--query.auto-downsampling >"$T/query.log" 2>&1 &
PIDS+=($!)
wait_ready "$qp" || { echo "query not ready"; exit 1; }
printf 'global:\n  scrape_interval: 1h\n' >"$T/p.yml"
prometheus --config.file="$T/p.yml" --storage.tsdb.path="$T/prom" --web.listen-address="127.0.0.1:$pp" \
	--storage.tsdb.retention.time=90d --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
	>"$T/prom.log" 2>&1 &
PIDS+=($!)
wait_ready "$pp" || { echo "prometheus not ready"; exit 1; }
sleep 3 # the querier finds the store

"$PY" - "$qp" "$pp" "$end" "$ROUNDS" "$c1" "$r1" "$n1" "$r4" <<'EOF'
import json, statistics, sys, time, urllib.parse, urllib.request
qp, pp, end, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]) // 1000, int(sys.argv[4])
c1, r1, n1, r4 = float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
start = end - 30 * 86400
dash = ["sum by (a) (rate(bench_metric[1h]))", "max by (b) (max_over_time(bench_metric[1h]))", "avg(bench_metric)",
        'sum(count_over_time(bench_metric{a="a1"}[1h]))', "sum by (a) (increase(bench_metric[6h]))"]

def run(port, q, res):
    p = {"query": q, "start": start, "end": end, "step": 3600}
    if res:
        p["max_source_resolution"] = res
    t0 = time.time()
    r = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?" + urllib.parse.urlencode(p),
                                          timeout=600).read())
    if r.get("status") != "success" or not r["data"]["result"]:
        raise SystemExit(f"{q}: {str(r)[:200]}")
    return time.time() - t0

times = {"raw": [], "auto": [], "prometheus": []}
for _ in range(rounds):
    for name, port, res in (("raw", qp, "0s"), ("auto", qp, None), ("prometheus", pp, None)):
        times[name].append(sum(run(port, q, res) for q in dash))
med = {k: statistics.median(v) for k, v in times.items()}
print(f"dashboard ({len(dash)} panels, 30 days, 1h step): " + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()))
print(f"RESULT downsample_cpu_samples_per_s {n1 / c1:.0f} raw samples/cpu-s (2-day block to 5m)")
print(f"RESULT downsample_rss {r1 / 1024:.1f} MiB peak; {r4 / 1024:.1f} MiB at 4x series ({(r4 - r1) / 1024:.1f} MiB more)")
print(f"RESULT downsample_dashboard_auto_vs_raw {med['raw'] / med['auto']:.1f} x faster with auto resolution (floor 10x)")
print(f"RESULT downsample_dashboard_auto_vs_prometheus {med['prometheus'] / med['auto']:.1f} x faster than Prometheus 2.42 on raw blocks")
EOF
