#!/bin/bash
# bench/compact_bench.sh — compaction throughput and peak RSS, Strata vs Prometheus 2.42 (issue 15).
#
# The same three 2h blocks (SERIES series x 120 samples each, written by bench/storegw_blockgen) are
# compacted into one:
#   - by Strata's merge alone (bench/compact_merge: tsdb/blockmerge.h on local blocks, what
#     Prometheus does locally);
#   - by `strata compact` end to end over a FILESYSTEM bucket (meta sync, download, merge, verify,
#     upload, marks);
#   - by Prometheus 2.42, which compacts them itself after start-up (two later blocks make the three
#     the plan of both planners); its time is prometheus_tsdb_compaction_duration_seconds, its peak
#     RSS the process's VmHWM.
# ROUNDS rounds (default 2), the three alternating in each round. Then the merge again with 4x the
# series: its peak RSS may grow by no more than the index tables (RSS flat in block size).
# Throughput per core is samples per CPU second (Strata: the merge process's CPU time; Prometheus: its
# process CPU time polled every 100ms around the compaction); the wall-time ratio is printed too (fsync
# of the output and the machine's load weigh on both).
set -u
cd "$(dirname "$0")/.."
: "${STRATA_BIN:=$PWD/build/strata}"
: "${STRATA_BENCH_BIN:=$PWD/build/bench}"
SERIES=${SERIES:-100000}
ROUNDS=${ROUNDS:-2}
T=$(mktemp -d /tmp/strata-compact-bench.XXXXXX)
PROM_PID=
trap '[ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null; rm -rf "$T"' EXIT
PY=/usr/bin/python3

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

H=$((3600 * 1000))
T0=$(( ($(date +%s) / 86400 - 3) * 86400 * 1000 ))
gen() { # dir series
	mkdir -p "$1"
	"$STRATA_BENCH_BIN/storegw_blockgen" "$1/in" 3 "$2" $((T0 + 6 * H)) >/dev/null &&
		"$STRATA_BENCH_BIN/storegw_blockgen" "$1/extra" 2 100 $((T0 + 20 * H)) >/dev/null
}
echo "uptime: $(uptime)"
gen "$T/d1" "$SERIES" || exit 1
gen "$T/d4" $((4 * SERIES)) || exit 1
SAMPLES=$((3 * SERIES * 120))
echo "input: 3 blocks x $SERIES series x 120 samples = $SAMPLES samples, $(du -sh "$T/d1/in" | cut -f1)"

merge() { # dir -> "seconds maxrss_kb cpu_seconds"
	rm -rf "$1/out"
	"$STRATA_BENCH_BIN/compact_merge" "$1/out" "$1"/in/* | awk '{print $6, $10, $8}'
}

strata_compact() { # -> "seconds maxrss_kb"
	local b=$T/bucket cfg
	rm -rf "$b" "$T/cdata"
	mkdir -p "$b"
	cp -r "$T"/d1/in/* "$T"/d1/extra/* "$b"/
	cfg="type: FILESYSTEM
config: {directory: $b}"
	/usr/bin/time -f "%e %M" -o "$T/time" "$STRATA_BIN" compact --objstore.config="$cfg" --data-dir="$T/cdata" \
		--consistency-delay=0s --http-address="127.0.0.1:$(free_port)" >"$T/compact.log" 2>&1 || {
		echo "strata compact failed: $(tail -3 "$T/compact.log")" >&2
		return 1
	}
	grep -q "blocks=3" "$T/compact.log" || echo "warning: strata compact did not compact the three blocks" >&2
	cat "$T/time"
}

prometheus_compact() { # -> "seconds vmhwm_kb cpu_seconds" (CPU while it compacted: polled around it)
	local d=$T/prom port i c m cpu0 cpu1
	rm -rf "$d"
	mkdir -p "$d/data"
	cp -r "$T"/d1/in/* "$T"/d1/extra/* "$d/data"/
	printf 'global:\n  scrape_interval: 1h\n' >"$d/p.yml"
	port=$(free_port)
	prometheus --config.file="$d/p.yml" --storage.tsdb.path="$d/data" --web.listen-address="127.0.0.1:$port" \
		--storage.tsdb.retention.time=30d >"$d/log" 2>&1 &
	PROM_PID=$!
	: >"$d/cpu"
	for ((i = 0; i < 1200; i++)); do
		m=$(curl -s "127.0.0.1:$port/metrics")
		c=$(awk '/^prometheus_tsdb_compactions_total / {print $2}' <<<"$m")
		[ "${c:-0}" -ge 1 ] 2>/dev/null && break
		echo "$(date +%s.%N) $(awk '/^process_cpu_seconds_total / {print $2}' <<<"$m")" >>"$d/cpu"
		sleep 0.1
	done
	local secs hwm
	secs=$(awk '/^prometheus_tsdb_compaction_duration_seconds_sum / {print $2}' <<<"$m")
	cpu1=$(awk '/^process_cpu_seconds_total / {print $2}' <<<"$m")
	# the CPU time polled last before the compaction started (it ended about now)
	cpu0=$(awk -v start="$("$PY" -c "import time; print(time.time() - $secs)")" '$1 <= start {c = $2} END {print c + 0}' "$d/cpu")
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PROM_PID/status")
	grep -q 'msg="compact blocks" count=3' "$d/log" || echo "warning: Prometheus did not compact the three blocks" >&2
	kill "$PROM_PID"
	wait "$PROM_PID" 2>/dev/null
	PROM_PID=
	echo "$secs $hwm $("$PY" -c "print(max(0.01, $cpu1 - ${cpu0:-0}))")"
}

for ((r = 1; r <= ROUNDS; r++)); do
	read -r ms mr mc < <(merge "$T/d1")
	read -r cs cr < <(strata_compact)
	read -r ps pr pc < <(prometheus_compact)
	echo "round $r: strata merge ${ms}s (cpu ${mc}s) ${mr} KiB; strata compact ${cs}s ${cr} KiB; prometheus ${ps}s (cpu ${pc}s) ${pr} KiB"
	MS+=("$ms") MR+=("$mr") MC+=("$mc") CS+=("$cs") CR+=("$cr") PS+=("$ps") PR+=("$pr") PC+=("$pc")
done
read -r m4s m4r m4c < <(merge "$T/d4")
echo "4x series: strata merge ${m4s}s ${m4r} KiB"

"$PY" - "$SAMPLES" "${MS[*]}" "${MR[*]}" "${CS[*]}" "${CR[*]}" "${PS[*]}" "${PR[*]}" "$m4r" "${MC[*]}" "${PC[*]}" <<'EOF'
import statistics as st, sys
n = int(sys.argv[1])
med = lambda s: st.median(float(x) for x in s.split())
ms, mr, cs, cr, ps, pr = (med(a) for a in sys.argv[2:8])
m4r = float(sys.argv[8])
mc, pc = med(sys.argv[9]), med(sys.argv[10])
print(f"RESULT compact_merge_samples_per_s {n / ms:.0f} samples/s strata merge of 3 blocks (median)")
print(f"RESULT compact_end_to_end_samples_per_s {n / cs:.0f} samples/s strata compact over a FILESYSTEM bucket")
print(f"RESULT compact_prometheus_samples_per_s {n / ps:.0f} samples/s Prometheus 2.42 start-up compaction")
print(f"RESULT compact_cpu_samples_per_s {n / mc:.0f} samples/cpu-s strata merge; Prometheus {n / pc:.0f} samples/cpu-s")
print(f"RESULT compact_speed_ratio_per_core {pc / mc:.2f} x strata merge vs Prometheus per CPU second (floor 3x)")
print(f"RESULT compact_speed_ratio_wall {ps / ms:.2f} x strata merge vs Prometheus, wall time (end to end {ps / cs:.2f}x)")
print(f"RESULT compact_rss_ratio {mr / pr:.3f} x strata merge peak RSS {mr / 1024:.1f} MiB vs Prometheus {pr / 1024:.1f} MiB (ceiling 0.25x; end to end {cr / pr:.3f}x)")
print(f"RESULT compact_rss_4x_series {(m4r - mr) / 1024:.1f} MiB more peak RSS for 4x the series ({mr / 1024:.1f} -> {m4r / 1024:.1f} MiB)")
EOF
