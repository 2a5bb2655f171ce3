"""Shared by the PromQL differential tests (promql_differential.py: `strata tools query` over a local
block directory; storegw_differential.py: `strata query` over `strata store` over a bucket), each
against a real Prometheus 2.42 over the same promtool-built blocks.

gen() writes the OpenMetrics dataset (counters with resets, gauges with gaps, classic histograms,
churning series; optionally longer and with a bulk family of thousands of series), QUERIES is the
query set ((expr, must_fail) pairs), compare() decides whether two Prometheus-API JSON answers agree
(same series, same timestamps, values equal or within a few ulp). Not a test itself: tests/run skips
lib* files.
"""
import json, math, os, random, subprocess, sys, time, urllib.error, urllib.parse, urllib.request

from lib_harness import free_port, stop  # noqa: F401 - re-exported for the tests that import them from here

T0 = 1700000000
N = 480  # samples per series at 15s -> 2h


def gen(path, n=N, bulk=0, bulk_step=120):
    """The dataset: n samples (15s apart from T0) per series of the base families; with bulk > 0 also
    `bulk_total{shard,i}` (bulk counters, one sample every bulk_step seconds over the same span)."""
    rnd = random.Random(42)
    out = []

    def fam(name, typ):
        out.append(f"# TYPE {name} {typ}")
    fam("http_requests", "counter")
    for job in ("api", "web"):
        for inst in range(3):
            v = 0.0
            for i in range(n):
                v += rnd.randint(0, 10)
                if i in (150, 333) and inst == 1:
                    v = rnd.randint(0, 5)
                out.append(f'http_requests_total{{job="{job}",instance="{inst}"}} {v} {T0 + i * 15}')
    fam("temperature", "gauge")
    for room in ("a", "b", "c"):
        for i in range(n):
            if room == "b" and 200 <= i < 260:
                continue  # gap
            out.append(f'temperature{{room="{room}"}} {20 + 5 * math.sin(i / 20.0) + rnd.random():.3f} {T0 + i * 15}')
    fam("latency_seconds", "histogram")
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    for svc in ("x", "y"):
        counts = [0] * len(bounds)
        total = 0.0
        for i in range(n):
            for _ in range(rnd.randint(0, 6)):
                obs = rnd.random() * 1.2
                total += obs
                for k, b in enumerate(bounds):
                    if b == "+Inf" or obs <= float(b):
                        counts[k] += 1
            for k, b in enumerate(bounds):
                out.append(f'latency_seconds_bucket{{svc="{svc}",le="{b}"}} {counts[k]} {T0 + i * 15}')
            out.append(f'latency_seconds_count{{svc="{svc}"}} {counts[-1]} {T0 + i * 15}')
            out.append(f'latency_seconds_sum{{svc="{svc}"}} {total:.4f} {T0 + i * 15}')
    fam("churn", "gauge")
    for pod in range(6):
        lo, hi = pod * 60, pod * 60 + 150
        for i in range(lo, min(hi, n)):
            out.append(f'churn{{pod="p{pod}"}} {pod + i % 7} {T0 + i * 15}')
    if bulk:
        brnd = random.Random(7)
        fam("bulk", "counter")
        span = n * 15
        for s in range(bulk):
            v = 0
            # every 10th series starts late / ends early so blocks hold different series sets
            lo = (s % 10 == 3) * span // 3
            hi = span - (s % 10 == 7) * span // 3
            for t in range(lo, hi, bulk_step):
                v += brnd.randint(0, 100)
                out.append(f'bulk_total{{shard="s{s % 16}",i="{s}"}} {v} {T0 + t}')
    out.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


QUERIES = []


def q(expr, fail=False):
    QUERIES.append((expr, fail))


sel = ["http_requests_total", 'http_requests_total{job="api"}', "temperature", "churn"]
for f in ["rate", "increase", "delta", "irate", "idelta", "deriv", "resets", "changes", "avg_over_time",
          "sum_over_time", "min_over_time", "max_over_time", "count_over_time", "stddev_over_time",
          "stdvar_over_time", "last_over_time", "present_over_time", "absent_over_time"]:
    for s in sel[:3]:
        q(f"{f}({s}[5m])")
    q(f"{f}(churn[2m] offset 1m)")
for f in ["abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn", "sin", "cos", "tan", "asin", "acos",
          "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad", "timestamp", "day_of_month",
          "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year", "sort", "sort_desc",
          "absent"]:
    q(f"{f}(temperature)")
for a in ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]:
    q(f"{a}(rate(http_requests_total[5m]))")
    q(f"{a} by (job) (rate(http_requests_total[5m]))")
    q(f"{a}(temperature) without (room)")
for e in [
    "topk(2, temperature)", "bottomk(1, rate(http_requests_total[5m]))", "topk by (job) (1, http_requests_total)",
    "quantile(0.9, temperature)", "quantile by (job) (0.5, rate(http_requests_total[5m]))",
    'count_values("v", ceil(temperature))', "histogram_quantile(0.9, rate(latency_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le, svc) (rate(latency_seconds_bucket[10m])))",
    "rate(latency_seconds_sum[5m]) / rate(latency_seconds_count[5m])",
    "predict_linear(temperature[10m], 3600)", "holt_winters(temperature[10m], 0.5, 0.5)",
    "quantile_over_time(0.75, temperature[10m])", "clamp(temperature, 21, 23)", "clamp_min(temperature, 22)",
    "clamp_max(temperature, 22)", "round(temperature)", "round(temperature, 0.5)",
    'label_replace(temperature, "r2", "room-$1", "room", "(.*)")', 'label_join(temperature, "j", "-", "room", "__name__")',
    "scalar(sum(temperature))", "vector(1)", "time()", "pi()", "temperature > 22", "temperature > bool 22",
    "22 < temperature", "temperature + 1", "2 * temperature", "temperature ^ 2", "temperature % 3", "-temperature",
    "temperature atan2 temperature", "http_requests_total / on(job, instance) http_requests_total",
    "http_requests_total * ignoring(instance) group_left sum by (job) (http_requests_total)",
    "sum by (job) (http_requests_total) / ignoring(instance) group_right http_requests_total",
    "temperature and churn", "temperature or churn", "churn unless churn{pod=\"p1\"}",
    'http_requests_total{job=~"a.*"}', 'http_requests_total{instance!="1"}', 'http_requests_total{job!~"w.*"}',
    "http_requests_total offset 5m", "http_requests_total offset -5m", f"http_requests_total @ {T0 + 3600}",
    f"rate(http_requests_total[5m] @ {T0 + 3600})", "rate(http_requests_total[5m] @ end())", "temperature @ start()",
    "max_over_time(temperature[10m:1m])", "rate(http_requests_total[5m:30s])",
    "avg_over_time(rate(http_requests_total[1m])[10m:])", "max_over_time(deriv(temperature[5m])[30m:2m] offset 1m)",
    "sum(rate(http_requests_total[5m])) by (job) > 1", "count(churn)", "absent(nonexistent{job=\"x\"})",
    "absent_over_time(nonexistent[5m])", "sum(churn) / count(churn)", "1 + 2 * 3", "2 ^ 3 ^ 2", "(1 + 2) * 3",
    "sgn(-temperature)", "changes(churn[10m])", "resets(http_requests_total[30m])", "irate(http_requests_total[1m])",
    "delta(temperature[2m])", "idelta(temperature[1m])", "sum(http_requests_total) by (instance)",
    "sum without (instance) (http_requests_total)", "count by (job) (http_requests_total > 500)",
    "stddev by (job) (http_requests_total)", "topk(2, avg_over_time(temperature[5m]))",
    "max by (room) (temperature) - min by (room) (temperature)", "sort_desc(sum by (job) (http_requests_total))",
    "timestamp(temperature offset 1m)", "minute(vector(time()))", "year()", "hour()",
]:
    q(e)
for e in ["rate(temperature)", "sum(", "temperature[5m] + 1", "foo{", "1 +", "http_requests_total / on(job) http_requests_total",
          "label_replace(temperature, \"1x\", \"a\", \"room\", \"(.*)\")", "topk(2, 3)", "{__name__=~\".*\"}", "sum by (job"]:
    q(e, fail=True)


# More queries, with the expected outcome of each (fail=None: both fail or both agree; False: both succeed;
# True: both fail, and promql_differential.py also compares matching errors' messages byte for byte).
# Mode-dependent errors (fail=None: both fail or both agree). Label sets that become equal once
# __name__ is dropped: 2.42 rejects a range-vector function's or unary minus's whole matrix, so range
# queries fail even when the two series never share a step, while an instant query sees only one.
SPLIT = f"((latency_seconds_count and on() (vector(time()) < {T0 + 4000})) or " \
        f"(latency_seconds_sum and on() (vector(time()) >= {T0 + 4000})))"
EXTRA = [(e, None) for e in [
    f"-{SPLIT}", f"rate({SPLIT}[10m:1m])", f"abs({SPLIT})", f"sum by (svc) ({SPLIT})",
    'rate({__name__=~"latency_seconds_(count|sum)"}[5m])', '-{__name__=~"latency_seconds_(count|sum)"}',
    'last_over_time({__name__=~"latency_seconds_(count|sum)"}[5m])']]
# Step-invariant parts (@) are evaluated once and copied to every step, as 2.42 does; the peak-samples
# check below holds them to its accounting.
EXTRA += [(e, False) for e in [
    f"sum by (job) (rate(http_requests_total[5m] @ {T0 + 3600})) / on(job) group_left sum by (job) (http_requests_total)",
    f"predict_linear(temperature[10m] @ {T0 + 3600}, 60)", f"max_over_time(temperature[10m:1m] @ {T0 + 3600})",
    f"topk(2, temperature @ {T0 + 3000}) * 2", "-(temperature @ end()) + temperature", "scalar(churn{pod=\"p2\"}) * temperature",
    f"timestamp(temperature @ {T0 + 3600})", f"avg_over_time((temperature @ {T0 + 3600})[5m:1m])",
    "round(temperature, 0.25) + vector(1)", "count_values(\"t\", round(temperature))"]]

# Matching errors: both fail and Strata's message is Prometheus's, byte for byte (label sets printed
# as labels.String(): {__name__="x", job="y"}). Checked for these and for every fail=True query whose
# Prometheus error is one of them. The duplicate side is a selector: which pair 2.42 names for an
# aggregation's output depends on Go's random map order.
EXTRA += [(e, True) for e in [
    "http_requests_total * on(job) group_left http_requests_total",
    "http_requests_total * on(job) group_right http_requests_total",
    "http_requests_total + on(job) sum by (job) (http_requests_total)"]]


def prom_query(port, expr, params):
    """POST to a Prometheus-compatible HTTP API (query_range when params has a step); the JSON answer."""
    data = urllib.parse.urlencode(dict(params, query=expr)).encode()
    path = "/api/v1/query_range" if "step" in params else "/api/v1/query"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def start_prometheus(tmp, tsdb_dir, timeout=20, args=()):
    """Prometheus 2.42 over tsdb_dir on a free 127.0.0.1 port, no scrapes (args: more flags); (process, port)
    once ready."""
    cfg = os.path.join(tmp, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")
    port = free_port()
    proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tsdb_dir}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as rr:
                if rr.status == 200:
                    return proc, port
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError("prometheus did not become ready")


def close(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) and math.isnan(y):
        return True
    return abs(x - y) <= 4 * sys.float_info.epsilon * max(abs(x), abs(y))


def compare(p, s, drop_labels=()):
    """None when the answers agree, else why. drop_labels are removed from s's series first (external
    labels a querier adds)."""
    if p["status"] != "success" or s["status"] != "success":
        return f"status prometheus={p.get('status')} {p.get('error', '')} strata={s.get('status')} {s.get('error', '')}"
    pd, sd = p["data"], s["data"]
    if pd["resultType"] != sd["resultType"]:
        return f"resultType {pd['resultType']} vs {sd['resultType']}"
    if pd["resultType"] == "scalar":
        pr, sr = pd["result"], sd["result"]
        return None if pr[0] == sr[0] and close(pr[1], sr[1]) else f"scalar {pr} vs {sr}"
    key = lambda r: json.dumps(r["metric"], sort_keys=True)
    skey = lambda r: json.dumps({k: v for k, v in r["metric"].items() if k not in drop_labels}, sort_keys=True)
    pm = {key(r): r for r in pd["result"]}
    sm = {skey(r): r for r in sd["result"]}
    if drop_labels and len(sm) != len(sd["result"]):
        return f"strata returned {len(sd['result'])} series, {len(sm)} distinct once {list(drop_labels)} dropped"
    if set(pm) != set(sm):
        return f"series differ: only prometheus {sorted(set(pm) - set(sm))[:3]}, only strata {sorted(set(sm) - set(pm))[:3]}"
    for k in pm:
        pv = pm[k].get("values") or [pm[k].get("value")]
        sv = sm[k].get("values") or [sm[k].get("value")]
        if len(pv) != len(sv):
            return f"{k}: {len(pv)} points vs {len(sv)}"
        for a, b in zip(pv, sv):
            if a[0] != b[0] or not close(a[1], b[1]):
                return f"{k}: point {a} vs {b}"
    return None
