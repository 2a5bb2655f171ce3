#!/bin/bash
# `strata sidecar` next to a real Prometheus 2.42 (Debian), with a TSDB pre-populated by promtool
# (2h blocks of history) plus live self-scraping:
#   - StoreAPI over gRPC (python grpcio client): Info (external labels, min time of the oldest block),
#     Series of the history compared sample by sample (XOR decoded in python) with Prometheus's own
#     answer to a range-vector query, external-label matchers, LabelNames/LabelValues;
#   - shipping to FILESYSTEM and S3 (private server from scripts/s3-server): meta.json thanos section,
#     thanos.shipper.json, `strata tools bucket verify`, nothing deleted in Prometheus's dir;
#   - crash safety: a partial upload (no meta.json) left by a killed sidecar, and a sidecar killed
#     with SIGKILL while uploading to S3, are completed by the restarted sidecar exactly once;
#   - reloader: a change of the watched config file makes Prometheus reload;
#   - errors: Prometheus down at start (bounded wait, clear message), Prometheus gone later (Series
#     fails with UNAVAILABLE, prometheus_up drops to 0, no crash), garbage remote-read answer (error,
#     no crash), empty external labels / unequal block durations refused when shipping.
. "$(dirname "$0")/lib.sh"
S=$STRATA_BIN
command -v prometheus >/dev/null && command -v promtool >/dev/null || { fail setup "prometheus/promtool not installed"; finish; }

# ---- python pieces: generated protos, a StoreAPI client, a fake Prometheus ----
mkdir -p "$TEST_TMP/py"
protoc --proto_path="$STRATA_ROOT/proto" --python_out="$TEST_TMP/py" $(cd "$STRATA_ROOT/proto" && ls *.proto) ||
	{ fail setup "protoc --python_out failed"; finish; }
cat >"$TEST_TMP/py/client.py" <<'EOF'
"""client.py GRPC_PORT CMD ARGS... — prints JSON results of StoreAPI calls."""
import json, sys
import grpc
import info_pb2, storepb_rpc_pb2 as rpc, storepb_types_pb2 as types

def xor_decode(data):
    """Prometheus XOR chunk -> [(t, v)]."""
    import struct
    n = int.from_bytes(data[:2], "big")
    bits = int.from_bytes(data[2:], "big")
    nbits = (len(data) - 2) * 8
    pos = 0
    def read(k):
        nonlocal pos
        if pos + k > nbits:
            raise ValueError("chunk too short")
        v = (bits >> (nbits - pos - k)) & ((1 << k) - 1)
        pos += k
        return v
    def uvarint():
        nonlocal pos
        x = s = 0
        while True:
            b = read(8)
            x |= (b & 0x7F) << s
            s += 7
            if b < 0x80:
                return x
    def varint():
        u = uvarint()
        return (u >> 1) ^ -(u & 1)
    out = []
    if n == 0:
        return out
    t = varint()
    vb = read(64)
    out.append((t, struct.unpack(">d", vb.to_bytes(8, "big"))[0]))
    if n == 1:
        return out
    delta = uvarint()
    leading = trailing = 0
    def next_value(vb):
        nonlocal leading, trailing
        if read(1) == 0:
            return vb
        if read(1) == 1:
            leading = read(5)
            sig = read(6)
            if sig == 0:
                sig = 64
            trailing = 64 - leading - sig
        sig = 64 - leading - trailing
        return vb ^ (read(sig) << trailing)
    t += delta
    vb = next_value(vb)
    out.append((t, struct.unpack(">d", vb.to_bytes(8, "big"))[0]))
    for _ in range(2, n):
        if read(1) == 0:
            dod = 0
        elif read(1) == 0:
            dod = read(14); dod -= (1 << 14) if dod >= (1 << 13) else 0
        elif read(1) == 0:
            dod = read(17); dod -= (1 << 17) if dod >= (1 << 16) else 0
        elif read(1) == 0:
            dod = read(20); dod -= (1 << 20) if dod >= (1 << 19) else 0
        else:
            dod = read(64); dod -= (1 << 64) if dod >= (1 << 63) else 0
        delta += dod
        t += delta
        vb = next_value(vb)
        out.append((t, struct.unpack(">d", vb.to_bytes(8, "big"))[0]))
    return out

def main():
    port, cmd = sys.argv[1], sys.argv[2]
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(ch).result(timeout=10)
    M = types.LabelMatcher
    def matchers(spec):  # name=value,name=~value
        out = []
        for part in spec.split(","):
            for op, ty in (("!~", M.NRE), ("=~", M.RE), ("!=", M.NEQ), ("=", M.EQ)):
                if op in part:
                    n, v = part.split(op, 1)
                    out.append(M(type=ty, name=n, value=v))
                    break
        return out
    try:
        if cmd == "info":
            info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                                  response_deserializer=info_pb2.InfoResponse.FromString)
            r = info(info_pb2.InfoRequest(), timeout=10)
            print(json.dumps({"type": r.ComponentType,
                              "labels": [[[l.name, l.value] for l in s.labels] for s in r.label_sets],
                              "min_time": r.store.min_time, "max_time": r.store.max_time}))
        elif cmd == "series":
            series = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                     response_deserializer=rpc.SeriesResponse.FromString)
            req = rpc.SeriesRequest(min_time=int(sys.argv[4]), max_time=int(sys.argv[5]), matchers=matchers(sys.argv[3]))
            out = []
            for resp in series(req, timeout=30):
                if resp.WhichOneof("result") != "series":
                    continue
                s = resp.series
                samples, nchunks, maxn = [], 0, 0
                for c in s.chunks:
                    dec = xor_decode(c.raw.data)
                    nchunks += 1
                    maxn = max(maxn, len(dec))
                    samples += [[t, v] for t, v in dec if req.min_time <= t <= req.max_time]
                out.append({"labels": {l.name: l.value for l in s.labels}, "samples": samples,
                            "chunks": nchunks, "max_per_chunk": maxn})
            print(json.dumps({"ok": True, "series": out}))
        elif cmd == "names":
            f = ch.unary_unary("/thanos.Store/LabelNames", request_serializer=rpc.LabelNamesRequest.SerializeToString,
                               response_deserializer=rpc.LabelNamesResponse.FromString)
            r = f(rpc.LabelNamesRequest(start=int(sys.argv[3]), end=int(sys.argv[4])), timeout=10)
            print(json.dumps({"ok": True, "names": list(r.names)}))
        elif cmd == "values":
            f = ch.unary_unary("/thanos.Store/LabelValues", request_serializer=rpc.LabelValuesRequest.SerializeToString,
                               response_deserializer=rpc.LabelValuesResponse.FromString)
            r = f(rpc.LabelValuesRequest(label=sys.argv[3], start=int(sys.argv[4]), end=int(sys.argv[5])), timeout=10)
            print(json.dumps({"ok": True, "values": list(r.values)}))
    except grpc.RpcError as e:
        print(json.dumps({"ok": False, "code": e.code().name, "details": e.details()}))

main()
EOF
cat >"$TEST_TMP/py/fakeprom.py" <<'EOF'
"""fakeprom.py PORT: a 'Prometheus' whose remote read answers garbage."""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, ctype, body):
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/-/ready": self.reply(200, "text/plain", b"ready")
        elif self.path.startswith("/api/v1/status/config"):
            self.reply(200, "application/json", b'{"status":"success","data":{"yaml":"global:\\n  external_labels:\\n    cluster: fake\\n"}}')
        else: self.reply(404, "text/plain", b"no")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"\x05\xde\xad\xbe\xef" + b"garbage!"
        self.reply(200, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse", body)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
client() { (cd "$TEST_TMP/py" && "$PY" client.py "$@"); }
jq_py() { # JSON-FILE PY-EXPR (with d = the parsed JSON): exit 0 if the expression is true
	"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}
metric() { # URL NAME: value of an unlabelled metric
	curl -s -m 5 "$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}

# ---- history: 3 series, one 2h-aligned window 4-6h ago, made into a block by promtool ----
NOW=$(date +%s)
BASE=$(( (NOW / 7200 - 3) * 7200 ))
{
	echo '# TYPE hist_metric gauge'
	for i in $(seq 0 299); do
		t=$((BASE + i * 15))
		echo "hist_metric{job=\"a\"} $i $t"
		echo "hist_metric{job=\"b\"} $((i * 2)).5 $t"
		echo "hist_metric{job=\"c\",extra=\"x\"} -$i $t"
	done
	echo '# EOF'
} >"$TEST_TMP/hist.om"
DATA=$TEST_TMP/prom
promtool tsdb create-blocks-from openmetrics "$TEST_TMP/hist.om" "$DATA" >/dev/null 2>&1 || { fail setup "promtool"; finish; }
HIST_ULID=$(ls "$DATA" | head -1)

PP=$(free_port)
cat >"$TEST_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  external_labels:
    cluster: c1
    replica: "0"
scrape_configs:
  - job_name: prom
    static_configs: [{targets: ['127.0.0.1:$PP']}]
EOF
start_prometheus() {
	start_bg prometheus prometheus --config.file="$TEST_TMP/prometheus.yml" --storage.tsdb.path="$DATA" \
		--web.listen-address=127.0.0.1:$PP --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
		--web.enable-lifecycle --log.level=warn
	wait_url "http://127.0.0.1:$PP/-/ready" 60 || { fail prometheus_start "Prometheus did not become ready"; finish; }
}
start_prometheus
PROM=http://127.0.0.1:$PP
FS_BUCKET=$TEST_TMP/bucket
FS_CFG="type: FILESYSTEM
config: {directory: $FS_BUCKET}"
GP=$(free_port) HP=$(free_port)
start_sidecar() { # NAME extra flags...
	local n=$1
	shift
	start_bg "$n" "$S" sidecar --prometheus.url=$PROM --tsdb.path="$DATA" --grpc-address=127.0.0.1:$GP \
		--http-address=127.0.0.1:$HP --shipper.sync-interval=1s --prometheus.get_config_interval=1s "$@"
	wait_url "http://127.0.0.1:$HP/-/ready" 30 || fail "$n"_ready "sidecar not ready: $(tail -3 "$TEST_TMP/$n.log")"
}
start_sidecar sidecar --objstore.config="$FS_CFG" --reloader.config-file="$TEST_TMP/prometheus.yml"
SC=http://127.0.0.1:$HP

# ---- shipping to FILESYSTEM ----
for i in $(seq 1 100); do [ -f "$FS_BUCKET/$HIST_ULID/meta.json" ] && break; sleep 0.2; done
check ship_fs_meta test -f "$FS_BUCKET/$HIST_ULID/meta.json"
check ship_fs_thanos_section "$PY" -c "
import json,sys; m=json.load(open('$FS_BUCKET/$HIST_ULID/meta.json')); t=m['thanos']
assert t['labels']=={'cluster':'c1','replica':'0'}, t; assert t['source']=='sidecar', t
assert t['downsample']['resolution']==0, t
fs=[f['rel_path'] for f in t['files']]; assert fs==['chunks/000001','index','meta.json'], fs
import os; assert all(f.get('size_bytes')==os.path.getsize('$DATA/$HIST_ULID/'+f['rel_path']) for f in t['files'][:2]), t"
check ship_fs_shipper_json "$PY" -c "
import json; m=json.load(open('$DATA/thanos.shipper.json')); assert m['version']==1 and m['uploaded']==['$HIST_ULID'], m"
check ship_fs_local_untouched "$PY" -c "
import json; m=json.load(open('$DATA/$HIST_ULID/meta.json')); assert 'thanos' not in m, m"
"$S" tools bucket verify --objstore.config="$FS_CFG" >"$TEST_TMP/verify_fs.out" 2>&1
check ship_fs_verify grep -q "verified 1 blocks: 0 issues" "$TEST_TMP/verify_fs.out"
# The uploaded block reads the same as the original for Prometheus's own tooling.
mkdir -p "$TEST_TMP/orig/wal" "$TEST_TMP/dl/wal" # promtool dump wants a wal dir
cp -r "$DATA/$HIST_ULID" "$TEST_TMP/orig/"
cp -r "$FS_BUCKET/$HIST_ULID" "$TEST_TMP/dl/"
promtool tsdb dump "$TEST_TMP/orig" >"$TEST_TMP/dump_orig.txt" 2>/dev/null
promtool tsdb dump "$TEST_TMP/dl" >"$TEST_TMP/dump_dl.txt" 2>/dev/null
check ship_fs_promtool_dump_equal test -s "$TEST_TMP/dump_dl.txt" -a "$(wc -l <"$TEST_TMP/dump_dl.txt")" = 900 -a \
	-z "$(cmp "$TEST_TMP/dump_orig.txt" "$TEST_TMP/dump_dl.txt" 2>&1)"
sleep 2
check ship_fs_uploads_metric test "$(metric $SC thanos_shipper_uploads_total)" = 1
check prometheus_up_metric test "$(metric $SC thanos_sidecar_prometheus_up)" = 1

# ---- StoreAPI: Info, Series vs Prometheus, labels ----
client $GP info >"$TEST_TMP/info.json" 2>&1
check info_labels_and_time jq_py "$TEST_TMP/info.json" \
	"d['type']=='sidecar' and d['labels']==[[['cluster','c1'],['replica','0']]] and d['min_time']==$BASE*1000 and d['max_time']==2**63-1"

# ---- Info min time from Prometheus's head: a Prometheus with no block yet (only what it scraped) ----
P2=$(free_port) G2=$(free_port) H2=$(free_port)
mkdir -p "$TEST_TMP/prom2"
sed "s/127.0.0.1:$PP/127.0.0.1:$P2/" "$TEST_TMP/prometheus.yml" >"$TEST_TMP/prometheus2.yml"
start_bg prometheus2 prometheus --config.file="$TEST_TMP/prometheus2.yml" --storage.tsdb.path="$TEST_TMP/prom2" \
	--web.listen-address=127.0.0.1:$P2 --log.level=warn
wait_url "http://127.0.0.1:$P2/-/ready" 60 || fail prometheus2_start "Prometheus did not become ready"
head_min() { curl -s -m 5 "http://127.0.0.1:$P2/api/v1/status/tsdb" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['data']['headStats']['minTime'])"; }
for i in $(seq 1 100); do [ "$(head_min)" != 9223372036854775807 ] && break; sleep 0.2; done
start_bg sidecar2 "$S" sidecar --prometheus.url=http://127.0.0.1:$P2 --tsdb.path="$TEST_TMP/prom2" --grpc-address=127.0.0.1:$G2 \
	--http-address=127.0.0.1:$H2 --prometheus.get_config_interval=1s
wait_url "http://127.0.0.1:$H2/-/ready" 30 || fail sidecar2_ready "sidecar not ready: $(tail -3 "$TEST_TMP/sidecar2.log")"
HM=$(head_min)
client $G2 info >"$TEST_TMP/info2.json" 2>&1
check info_min_time_from_prometheus_head jq_py "$TEST_TMP/info2.json" \
	"d['type']=='sidecar' and d['min_time']==$HM and $HM < 2**63-1 and d['max_time']==2**63-1"
stop_pid "${BG_PID_OF[sidecar2]}" 10
stop_pid "${BG_PID_OF[prometheus2]}" 10

START_MS=$((BASE * 1000)) END_MS=$(( (BASE + 299 * 15) * 1000 ))
client $GP series "__name__=hist_metric" $START_MS $END_MS >"$TEST_TMP/series.json" 2>&1
curl -s -m 10 "$PROM/api/v1/query" --data-urlencode "query=hist_metric[75m]" --data-urlencode "time=$((BASE + 299 * 15))" \
	>"$TEST_TMP/prom_range.json"
check series_equal_prometheus "$PY" -c "
import json
g=json.load(open('$TEST_TMP/series.json')); p=json.load(open('$TEST_TMP/prom_range.json'))
assert g['ok'], g
got={tuple(sorted(s['labels'].items())): [(t/1000, v) for t,v in s['samples']] for s in g['series']}
want={}
for r in p['data']['result']:
    ls=dict(r['metric']); ls.update({'cluster':'c1','replica':'0'})
    want[tuple(sorted(ls.items()))]=[(float(t), float(v)) for t,v in r['values']]
assert len(want)==3 and sum(len(v) for v in want.values())>=3*299, (len(want), [len(v) for v in want.values()])
# Prometheus' range selector is left-open; compare over its window.
lo=min(t for v in want.values() for t,_ in v)
got={k:[x for x in v if x[0]>=lo] for k,v in got.items()}
assert got==want, {k:(len(got.get(k,[])),len(v)) for k,v in want.items()}
lab=[list(s['labels'].items()) for s in g['series']]; assert lab==sorted(lab), 'unsorted'
assert all(s['max_per_chunk']<=120 for s in g['series'])"
client $GP series "__name__=hist_metric,cluster=c2" $START_MS $END_MS >"$TEST_TMP/series_c2.json" 2>&1
check series_external_mismatch jq_py "$TEST_TMP/series_c2.json" "d['ok'] and d['series']==[]"
client $GP series "__name__=hist_metric,replica=0,job=~a|c" $START_MS $END_MS >"$TEST_TMP/series_r0.json" 2>&1
check series_external_match jq_py "$TEST_TMP/series_r0.json" \
	"d['ok'] and sorted(s['labels']['job'] for s in d['series'])==['a','c']"
# Prometheus's first self-scrape comes ~5s after start (target discovery batching).
for i in $(seq 1 100); do curl -s "$PROM/api/v1/query?query=up" | grep -q '"job":"prom"' && break; sleep 0.2; done
client $GP series "__name__=up" $(( (NOW - 600) * 1000 )) $(( (NOW + 600) * 1000 )) >"$TEST_TMP/series_up.json" 2>&1
check series_live_head jq_py "$TEST_TMP/series_up.json" \
	"d['ok'] and len(d['series'])==1 and d['series'][0]['labels']=={'__name__':'up','cluster':'c1','instance':'127.0.0.1:$PP','job':'prom','replica':'0'} and len(d['series'][0]['samples'])>0"
client $GP names $START_MS $(( NOW * 1000 )) >"$TEST_TMP/names.json" 2>&1
check label_names jq_py "$TEST_TMP/names.json" \
	"d['ok'] and all(n in d['names'] for n in ['__name__','cluster','extra','job','replica']) and d['names']==sorted(d['names'])"
client $GP values job $START_MS $(( NOW * 1000 )) >"$TEST_TMP/values.json" 2>&1
check label_values jq_py "$TEST_TMP/values.json" "d['ok'] and all(v in d['values'] for v in ['a','b','c','prom'])"

# ---- reloader: a change of the watched config file makes Prometheus reload ----
before=$(curl -s "$PROM/metrics" | awk '$1=="prometheus_config_last_reload_success_timestamp_seconds"{print $2}')
sleep 1.2
echo "# touched by the test" >>"$TEST_TMP/prometheus.yml"
ok=0
for i in $(seq 1 50); do
	after=$(curl -s "$PROM/metrics" | awk '$1=="prometheus_config_last_reload_success_timestamp_seconds"{print $2}')
	[ -n "$after" ] && [ "$after" != "$before" ] && { ok=1; break; }
	sleep 0.2
done
check reloader_reloads_prometheus test $ok = 1

# ---- crash safety: partial upload left by a killed sidecar is completed exactly once ----
stop_pid "${BG_PID_OF[sidecar]}" 10
check sidecar_graceful_exit test "$(grep -c 'sidecar shutting down' "$TEST_TMP/sidecar.log")" = 1
# Pretend the sidecar died after chunks+index: no meta.json in the bucket, no record locally.
rm "$FS_BUCKET/$HIST_ULID/meta.json"
echo '{"version":1,"uploaded":[]}' >"$DATA/thanos.shipper.json"
start_sidecar sidecar2 --objstore.config="$FS_CFG"
for i in $(seq 1 100); do [ -f "$FS_BUCKET/$HIST_ULID/meta.json" ] && break; sleep 0.2; done
sleep 2.5 # a few more shipper cycles
check restart_completes_partial test -f "$FS_BUCKET/$HIST_ULID/meta.json"
check restart_uploaded_once test "$(grep -c "uploaded block.*$HIST_ULID" "$TEST_TMP/sidecar2.log")" = 1
"$S" tools bucket verify --objstore.config="$FS_CFG" >"$TEST_TMP/verify_fs2.out" 2>&1
check restart_verify grep -q "verified 1 blocks: 0 issues" "$TEST_TMP/verify_fs2.out"
check prom_dir_intact test -f "$DATA/$HIST_ULID/index" -a -f "$DATA/$HIST_ULID/meta.json"

# ---- Prometheus gone later: errors, no crash ----
stop_pid "${BG_PID_OF[prometheus]}" 10
client $GP series "__name__=up" $(( (NOW - 600) * 1000 )) $(( (NOW + 600) * 1000 )) >"$TEST_TMP/series_down.json" 2>&1
check prom_down_series_unavailable jq_py "$TEST_TMP/series_down.json" \
	"not d['ok'] and d['code']=='UNAVAILABLE' and '127.0.0.1:$PP' in d['details']"
for i in $(seq 1 30); do [ "$(metric $SC thanos_sidecar_prometheus_up)" = 0 ] && break; sleep 0.2; done
check prom_down_up_metric test "$(metric $SC thanos_sidecar_prometheus_up)" = 0
check prom_down_still_healthy test "$(curl -s -m 5 $SC/-/healthy)" = OK
stop_pid "${BG_PID_OF[sidecar2]}" 10

# ---- Prometheus down at start: bounded wait, clear error ----
DEAD=$(free_port)
timeout 30 "$S" sidecar --prometheus.url=http://127.0.0.1:$DEAD --prometheus.ready_timeout=3s --tsdb.path="$DATA" \
	--grpc-address=127.0.0.1:$(free_port) --http-address=127.0.0.1:$(free_port) >"$TEST_TMP/dead.log" 2>&1
rc=$?
check prom_down_at_start_exits test $rc = 1
check prom_down_at_start_message grep -q "not ready within 3s.*127.0.0.1:$DEAD" "$TEST_TMP/dead.log"

# ---- garbage remote read: error, no crash ----
FP=$(free_port)
start_bg fakeprom "$PY" "$TEST_TMP/py/fakeprom.py" $FP
wait_url "http://127.0.0.1:$FP/-/ready" 10 || fail fakeprom "fake Prometheus did not start"
GP2=$(free_port) HP2=$(free_port)
start_bg garbage "$S" sidecar --prometheus.url=http://127.0.0.1:$FP --tsdb.path="$TEST_TMP/empty" \
	--grpc-address=127.0.0.1:$GP2 --http-address=127.0.0.1:$HP2
wait_url "http://127.0.0.1:$HP2/-/ready" 20 || fail garbage_ready "sidecar not ready: $(tail -3 "$TEST_TMP/garbage.log")"
client $GP2 series "__name__=up" 0 1000000 >"$TEST_TMP/garbage.json" 2>&1
check garbage_remote_read_error jq_py "$TEST_TMP/garbage.json" "not d['ok'] and 'remote read' in d['details']"
check garbage_sidecar_alive test "$(curl -s -m 5 http://127.0.0.1:$HP2/-/healthy)" = OK
# Shipping with a Prometheus without external labels is refused.
"$S" sidecar --prometheus.url=http://127.0.0.1:$FP --tsdb.path="$TEST_TMP/empty" --objstore.config="$FS_CFG" \
	--grpc-address=127.0.0.1:$(free_port) --http-address=127.0.0.1:$(free_port) >"$TEST_TMP/noflags.log" 2>&1
check refuses_without_block_duration_flags grep -q "cannot check Prometheus block durations" "$TEST_TMP/noflags.log"
stop_pid "${BG_PID_OF[garbage]}" 10
stop_pid "${BG_PID_OF[fakeprom]}" 5

# ---- S3: ship, SIGKILL mid-way, restart: every block once, all with meta.json ----
export S3_PORT=$(free_port) S3_DATA_DIR=$TEST_TMP/s3
if ENV=$("$STRATA_ROOT/scripts/s3-server" start 2>"$TEST_TMP/s3start.log"); then
	trap 'S3_DATA_DIR=$TEST_TMP/s3 "$STRATA_ROOT/scripts/s3-server" stop --purge >/dev/null 2>&1; lib_cleanup' EXIT
	eval "$ENV"
	S3_CFG="type: S3
config:
  bucket: $S3_BUCKET
  endpoint: ${S3_ENDPOINT#http://}
  region: $S3_REGION
  access_key: $S3_ACCESS_KEY
  secret_key: $S3_SECRET_KEY
  insecure: true"
	start_prometheus
	rm -f "$DATA/thanos.shipper.json"
	start_bg s3kill "$S" sidecar --prometheus.url=$PROM --tsdb.path="$DATA" --grpc-address=127.0.0.1:$GP \
		--http-address=127.0.0.1:$HP --shipper.sync-interval=1s --objstore.config="$S3_CFG"
	for i in $(seq 1 200); do grep -q "Prometheus is ready" "$TEST_TMP/s3kill.log" && break; sleep 0.05; done
	sleep 0.3
	kill -KILL "${BG_PID_OF[s3kill]}" 2>/dev/null
	wait "${BG_PID_OF[s3kill]}" 2>/dev/null
	start_sidecar s3 --objstore.config="$S3_CFG"
	ok=0
	for i in $(seq 1 100); do
		"$S" tools bucket ls --objstore.config="$S3_CFG" >"$TEST_TMP/s3ls.out" 2>/dev/null
		grep -q "$HIST_ULID" "$TEST_TMP/s3ls.out" && { ok=1; break; }
		sleep 0.2
	done
	check ship_s3_visible test $ok = 1
	sleep 2
	n1=$(grep -c "uploaded block.*$HIST_ULID" "$TEST_TMP/s3kill.log")
	n2=$(grep -c "uploaded block.*$HIST_ULID" "$TEST_TMP/s3.log")
	check ship_s3_at_most_once_after_kill test $((n1 + n2)) -le 1
	"$S" tools bucket verify --objstore.config="$S3_CFG" >"$TEST_TMP/verify_s3.out" 2>&1
	check ship_s3_verify grep -q "verified 1 blocks: 0 issues" "$TEST_TMP/verify_s3.out"
	check ship_s3_no_partial test -z "$(grep issue= "$TEST_TMP/verify_s3.out")"
	"$S" tools bucket ls --objstore.config="$S3_CFG" -o json >"$TEST_TMP/s3ls.json" 2>/dev/null
	check ship_s3_meta "$PY" -c "
import json; m=json.loads(open('$TEST_TMP/s3ls.json').readline())
assert m['ulid']=='$HIST_ULID' and m['thanos']['labels']=={'cluster':'c1','replica':'0'} and m['thanos']['source']=='sidecar', m"
else
	fail s3_start "s3-server start failed: $(tail -3 "$TEST_TMP/s3start.log" | tr '\n' ' ')"
fi
for n in sidecar sidecar2 s3 garbage; do [ -n "${BG_PID_OF[$n]:-}" ] && stop_pid "${BG_PID_OF[$n]}" 10; done
check no_sanitizer_reports test -z "$(grep -l 'Sanitizer\|runtime error' "$TEST_TMP"/*.log)"
finish
