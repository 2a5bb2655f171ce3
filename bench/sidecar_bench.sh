#!/bin/bash
# sidecar_bench.sh — series streamed per second through `strata sidecar` (gRPC Series over remote
# read) vs Prometheus answering the same selection over its HTTP API, and the sidecar's peak RSS
# while streaming. Data: SERIES (default 100000) series x 4 samples in one promtool-made block.
# Results: RESULT lines for bench/run.
set -u
S=${STRATA_BIN:?}
ROOT=${STRATA_ROOT:?}
PY=${PYTHON:-/usr/bin/python3}
N=${SERIES:-100000}
TMP=$(mktemp -d /tmp/strata-sidecar-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() { for i in $(seq 1 300); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.1; done; return 1; }

BASE=$(( ($(date +%s) / 7200 - 3) * 7200 ))
"$PY" - "$N" "$BASE" >"$TMP/in.om" <<'EOF'
import sys
n, base = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
out.write("# TYPE bench_metric gauge\n")
for i in range(n):
    for k in range(4):
        out.write(f'bench_metric{{instance="host-{i:06d}",job="bench"}} {i + k} {base + k * 60}\n')
out.write("# EOF\n")
EOF
promtool tsdb create-blocks-from openmetrics "$TMP/in.om" "$TMP/data" >/dev/null 2>&1 || { echo "promtool failed"; exit 1; }
rm -f "$TMP/in.om"

PP=$(port) GP=$(port) HP=$(port)
cat >"$TMP/p.yml" <<EOF
global:
  external_labels: {cluster: bench}
EOF
prometheus --config.file="$TMP/p.yml" --storage.tsdb.path="$TMP/data" --web.listen-address=127.0.0.1:$PP \
	--log.level=warn >"$TMP/prom.log" 2>&1 &
PIDS+=($!)
wait_url "http://127.0.0.1:$PP/-/ready" || { echo "prometheus not ready"; exit 1; }
"$S" sidecar --prometheus.url=http://127.0.0.1:$PP --tsdb.path="$TMP/data" --grpc-address=127.0.0.1:$GP \
	--http-address=127.0.0.1:$HP --log.level=warn >"$TMP/sidecar.log" 2>&1 &
SPID=$!
PIDS+=($SPID)
wait_url "http://127.0.0.1:$HP/-/ready" || { echo "sidecar not ready"; cat "$TMP/sidecar.log"; exit 1; }

mkdir -p "$TMP/py"
protoc --proto_path="$ROOT/proto" --python_out="$TMP/py" $(cd "$ROOT/proto" && ls *.proto)
cat >"$TMP/py/stream.py" <<'EOF'
import sys, time, grpc
import storepb_rpc_pb2 as rpc, storepb_types_pb2 as types
port, mint, maxt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 1 << 30)])
grpc.channel_ready_future(ch).result(timeout=10)
series = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                         response_deserializer=None)  # raw bytes: measure the server, not python protobuf
M = types.LabelMatcher
req = rpc.SeriesRequest(min_time=mint, max_time=maxt, matchers=[M(type=M.EQ, name="__name__", value="bench_metric")])
t0 = time.monotonic()
n = nbytes = 0
for msg in series(req, timeout=600):
    n += 1
    nbytes += len(msg)
dt = time.monotonic() - t0
print(n, nbytes, dt)
EOF
MINT=$((BASE * 1000)) MAXT=$(( (BASE + 3600) * 1000 ))
read -r got bytes secs < <(cd "$TMP/py" && "$PY" stream.py $GP $MINT $MAXT)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$SPID/status)
echo "sidecar: $got frames, $bytes bytes in ${secs}s; peak RSS ${hwm} kB"
[ "$got" = "$N" ] || { echo "expected $N series, got $got"; exit 1; }

t0=$(date +%s.%N)
curl -s -o "$TMP/prom.json" -m 600 "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=bench_metric[1h]" \
	--data-urlencode "time=$((BASE + 3600))"
t1=$(date +%s.%N)
pn=$("$PY" -c "import json; print(len(json.load(open('$TMP/prom.json'))['data']['result']))")
echo "prometheus: $pn series via /api/v1/query in $(echo "$t1 - $t0" | bc)s"

"$PY" - "$got" "$secs" "$pn" "$t0" "$t1" "$hwm" <<'EOF'
import sys
n, secs, pn, t0, t1, hwm = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"RESULT sidecar_series_per_s {n / secs:.0f} series/s gRPC Series through the sidecar ({n} series x 4 samples)")
print(f"RESULT sidecar_prometheus_http_series_per_s {pn / (t1 - t0):.0f} series/s same selection from Prometheus /api/v1/query (JSON)")
print(f"RESULT sidecar_peak_rss {hwm / 1024:.1f} MiB sidecar VmHWM while streaming {n} series (target < 50)")
sys.exit(0 if hwm < 50 * 1024 else 1)
EOF
