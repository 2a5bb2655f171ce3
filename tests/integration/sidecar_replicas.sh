#!/bin/bash
# Two Prometheus 2.42 replicas (external labels cluster="c1", replica="0"|"1") holding the same
# promtool-made history, each with a `strata sidecar`, behind one `strata query
# --query.replica-label=replica`: instant and range queries equal what one Prometheus answers
# directly (plus cluster="c1", minus replica); with one replica stopped the other still answers;
# restarted, there are no duplicate series.
. "$(dirname "$0")/lib.sh"
S=$STRATA_BIN
command -v prometheus >/dev/null && command -v promtool >/dev/null || { fail setup "prometheus/promtool not installed"; finish; }

NOW=$(date +%s)
BASE=$(( (NOW / 7200 - 3) * 7200 ))
{
	echo '# TYPE rep_metric counter'
	for i in $(seq 0 299); do
		t=$((BASE + i * 15))
		echo "rep_metric_total{job=\"a\"} $((i * 3)) $t"
		echo "rep_metric_total{job=\"b\"} $((i * 5)) $t"
	done
	echo '# EOF'
} >"$TEST_TMP/hist.om"
promtool tsdb create-blocks-from openmetrics "$TEST_TMP/hist.om" "$TEST_TMP/blocks" >/dev/null 2>&1 || { fail setup promtool; finish; }

declare -A PP GP HP
for r in 0 1; do
	PP[$r]=$(free_port) GP[$r]=$(free_port) HP[$r]=$(free_port)
	mkdir -p "$TEST_TMP/data$r"
	cp -r "$TEST_TMP/blocks/"* "$TEST_TMP/data$r/"
	cat >"$TEST_TMP/prom$r.yml" <<EOF
global:
  scrape_interval: 1s
  external_labels: {cluster: c1, replica: "$r"}
EOF
done
start_prom() {
	start_bg prom$1 prometheus --config.file="$TEST_TMP/prom$1.yml" --storage.tsdb.path="$TEST_TMP/data$1" \
		--web.listen-address=127.0.0.1:${PP[$1]} --log.level=warn
	wait_url "http://127.0.0.1:${PP[$1]}/-/ready" 60 || fail prom$1_start "Prometheus $1 not ready"
}
start_sidecar() {
	start_bg sidecar$1 "$S" sidecar --prometheus.url=http://127.0.0.1:${PP[$1]} --tsdb.path="$TEST_TMP/data$1" \
		--grpc-address=127.0.0.1:${GP[$1]} --http-address=127.0.0.1:${HP[$1]} --prometheus.get_config_interval=1s
	wait_url "http://127.0.0.1:${HP[$1]}/-/ready" 30 || fail sidecar$1_start "sidecar $1 not ready"
}
for r in 0 1; do start_prom $r; start_sidecar $r; done
QP=$(free_port) QG=$(free_port)
start_bg query "$S" query --http-address=127.0.0.1:$QP --grpc-address=127.0.0.1:$QG \
	--endpoint=127.0.0.1:${GP[0]} --endpoint=127.0.0.1:${GP[1]} --query.replica-label=replica
wait_url "http://127.0.0.1:$QP/-/ready" 30 || fail query_start "query not ready: $(tail -3 "$TEST_TMP/query.log")"
sleep 6 # the querier's endpoint round (Info) for both sidecars

T_END=$((BASE + 299 * 15))
QUERIES=("rep_metric_total" "rate(rep_metric_total[5m])" "sum by (job) (rate(rep_metric_total[2m]))" "rep_metric_total{job=\"b\"} * 2")
# compare NAME: every query, instant and range, querier vs Prometheus 0.
compare() {
	local name=$1 i=0 q
	for q in "${QUERIES[@]}"; do
		i=$((i + 1))
		for kind in instant range; do
			local args=(--data-urlencode "query=$q")
			if [ $kind = instant ]; then
				args+=(--data-urlencode "time=$((T_END - 100))")
				path=query
			else
				args+=(--data-urlencode "start=$((BASE + 300))" --data-urlencode "end=$T_END" --data-urlencode "step=60")
				path=query_range
			fi
			curl -s -m 20 "http://127.0.0.1:${PP[0]}/api/v1/$path" "${args[@]}" >"$TEST_TMP/p.json"
			curl -s -m 20 "http://127.0.0.1:$QP/api/v1/$path" "${args[@]}" >"$TEST_TMP/q.json"
			if "$PY" - "$TEST_TMP/p.json" "$TEST_TMP/q.json" <<'EOF'; then pass "${name}_q${i}_$kind"; else fail "${name}_q${i}_$kind" "$q: $(head -c 300 "$TEST_TMP/q.json")"; fi
import json, sys
p, q = (json.load(open(f)) for f in sys.argv[1:3])
assert p["status"] == "success" and q["status"] == "success", (p.get("error"), q.get("error"))
def norm(d):
    out = {}
    for r in d["data"]["result"]:
        m = {k: v for k, v in r["metric"].items() if k not in ("cluster", "replica")}
        assert r["metric"].get("replica") is None, r["metric"]
        key = tuple(sorted(m.items()))
        assert key not in out, f"duplicate series {key}"
        vals = r.get("values") or [r["value"]]
        out[key] = [(float(t), round(float(v), 9)) for t, v in vals]
    return out
a, b = norm(p), norm(q)
assert a and a == b, (a, b)
for r in q["data"]["result"]:
    if "__name__" in r["metric"] or len(r["metric"]) > 1:
        assert r["metric"].get("cluster") == "c1", r["metric"]
EOF
		done
	done
}
compare both
stop_pid "${BG_PID_OF[prom1]}" 10
compare one_down
start_prom 1
sleep 2
compare restarted
finish
