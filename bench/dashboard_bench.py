#!/usr/bin/python3
"""Dashboard benchmark (issue 24): 12 typical Grafana range queries through `strata store` + `strata query`
against Prometheus 2.42 over the same four promtool-made 2h blocks, in one run.

Data (bench/dashboard_gen.py, cached in $DASH_BENCH_DATA, default bench/out/dashboard): 2,890 series over 8 h
(4.6 M samples) as OpenMetrics, made into blocks by `promtool tsdb create-blocks-from openmetrics`, uploaded to a
FILESYSTEM bucket with `strata tools bucket upload-blocks --label cluster="bench"`, and hard-linked into
Prometheus's data directory.

Run: start Prometheus, `strata store` over the bucket and `strata query --endpoint=<store>`; wait until idle and
read each process's RSS; one warm-up round; then DASH_BENCH_ROUNDS (default 5) rounds in which every query runs
once on each side, alternating which side goes first, over keep-alive connections without compression (the body
fully read is the time); medians per query. Every answer is compared with Prometheus's (the querier's external
label cluster="bench" removed): same series in the same order, same timestamps, and values either byte-identical
or within 1e-9 relative (counted separately). Memory: peak RSS (VmHWM) of store + query against Prometheus's, and
RSS of each DASH_BENCH_SETTLE_S (default 5) seconds after the last query against its idle RSS.

Prints RESULT lines. Floors from the issue: latency geomean <= 0.2x, no query above 0.5x, peak RSS <= 0.25x.
DASH_BENCH_ONLY=<substring> runs only the queries whose name contains it."""
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
DATA = os.environ.get("DASH_BENCH_DATA", os.path.join(ROOT, "bench", "out", "dashboard"))
ROUNDS = int(os.environ.get("DASH_BENCH_ROUNDS", "5"))
SETTLE_S = float(os.environ.get("DASH_BENCH_SETTLE_S", "5"))
ONLY = os.environ.get("DASH_BENCH_ONLY", "")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from lib_harness import free_port, stop, wait_ready  # noqa: E402

DATA_VERSION = "1"  # bump when dashboard_gen.py changes
STEP = 30

QUERIES = [  # (name, expression): what a service dashboard and a tenant dashboard show
    ("req_rate_by_handler", 'sum by (handler) (rate(http_requests_total{job="api"}[5m]))'),
    ("error_ratio", 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'),
    ("latency_p99", 'histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket[5m])))'),
    ("latency_mean", 'rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])'),
    ("cpu_busy", '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))'),
    ("mem_avail_ratio", 'node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes'),
    ("net_rx", 'sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))'),
    ("rss_max_1h", 'max_over_time(process_resident_memory_bytes[1h])'),
    ("up_by_job", 'sum by (job) (up)'),
    ("tenant_avg_series", 'avg_over_time(tenant_active_series[30m])'),
    ("tenant_top_ingest", 'topk(10, sum by (tenant) (rate(tenant_samples_ingested_total[5m])))'),
    ("goroutines_deriv", 'deriv(go_goroutines{job="worker"}[15m])'),
]


def log(*a):
    print(*a, flush=True)


def make_data():
    """The blocks and the bucket, made once and kept (regenerated when DATA_VERSION changes)."""
    stamp = os.path.join(DATA, "version")
    if os.path.exists(stamp) and open(stamp).read().strip() == DATA_VERSION:
        return json.load(open(os.path.join(DATA, "range.json")))
    shutil.rmtree(DATA, ignore_errors=True)
    os.makedirs(DATA)
    start = (int(time.time()) // 7200 - 5) * 7200  # 8h ending 2h ago, 2h-aligned: four whole blocks
    om = os.path.join(DATA, "data.om")
    t0 = time.time()
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "dashboard_gen.py"), om, str(start)], check=True)
    log(f"  generated {os.path.getsize(om) / 1e6:.0f} MB of OpenMetrics in {time.time() - t0:.0f}s")
    t0 = time.time()
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, os.path.join(DATA, "blocks")],
                   check=True, stdout=subprocess.DEVNULL)
    os.unlink(om)
    log(f"  promtool made the blocks in {time.time() - t0:.0f}s")
    with open(os.path.join(DATA, "bucket.yml"), "w") as f:
        f.write(f"type: FILESYSTEM\nconfig:\n  directory: {os.path.join(DATA, 'bucket')}\n")
    subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config-file=" + os.path.join(DATA, "bucket.yml"),
                    "--path=" + os.path.join(DATA, "blocks"), '--label=cluster="bench"'], check=True,
                   stdout=subprocess.DEVNULL)
    rng = {"start": start, "end": start + 8 * 3600}
    json.dump(rng, open(os.path.join(DATA, "range.json"), "w"))
    open(stamp, "w").write(DATA_VERSION + "\n")
    return rng


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
                elif k == "Threads":
                    out[k] = int(v)
    except OSError:
        pass
    return out


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def query_range(self, expr, start, end, step):
        body = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        t0 = time.perf_counter()
        self.conn.request("POST", "/api/v1/query_range", body,
                          {"Content-Type": "application/x-www-form-urlencoded"})
        r = self.conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise AssertionError(f"{expr}: HTTP {r.status} from :{self.port}: {data[:300]!r}")
        return dt, data


def compare(name, sdata, pdata):
    """(exact, close, points): values byte-identical, within 1e-9 relative; raises on any other difference."""
    s, p = json.loads(sdata), json.loads(pdata)
    if s["status"] != "success" or p["status"] != "success":
        raise AssertionError(f"{name}: strata {s.get('error')} prometheus {p.get('error')}")
    sr, pr = s["data"]["result"], p["data"]["result"]
    if len(sr) != len(pr):
        raise AssertionError(f"{name}: strata {len(sr)} series, prometheus {len(pr)}")
    exact = close = points = 0
    for a, b in zip(sr, pr):
        a["metric"].pop("cluster", None)
        if a["metric"] != b["metric"]:
            raise AssertionError(f"{name}: series {a['metric']} vs {b['metric']}")
        if len(a["values"]) != len(b["values"]):
            raise AssertionError(f"{name}: {a['metric']}: {len(a['values'])} points vs {len(b['values'])}")
        for (ta, va), (tb, vb) in zip(a["values"], b["values"]):
            points += 1
            if ta != tb:
                raise AssertionError(f"{name}: {a['metric']}: timestamp {ta} vs {tb}")
            if va == vb:
                exact += 1
                continue
            fa, fb = float(va), float(vb)
            if abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb)):
                close += 1
                continue
            raise AssertionError(f"{name}: {a['metric']} at {ta}: strata {va} prometheus {vb}")
    return exact, close, points


def main():
    rng = make_data()
    tmp = tempfile.mkdtemp(prefix="strata-dash-bench.")
    procs = []
    try:
        prom_dir = os.path.join(tmp, "prom")
        os.makedirs(prom_dir)
        blocks = os.path.join(DATA, "blocks")
        for d in os.listdir(blocks):
            shutil.copytree(os.path.join(blocks, d), os.path.join(prom_dir, d), copy_function=os.link)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1m}\nscrape_configs: []\n")
        pport, sg, sh, qg, qh = (free_port() for _ in range(5))
        logs = {n: open(os.path.join(tmp, n + ".log"), "w") for n in ("prometheus", "store", "query")}
        prom = subprocess.Popen(["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + prom_dir,
                                 f"--web.listen-address=127.0.0.1:{pport}", "--storage.tsdb.retention.time=100y",
                                 "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
                                 "--log.level=warn"], stdout=logs["prometheus"], stderr=subprocess.STDOUT)
        procs.append(prom)
        store = subprocess.Popen([STRATA, "store", "--objstore.config-file=" + os.path.join(DATA, "bucket.yml"),
                                  "--data-dir=" + os.path.join(tmp, "store-data"), f"--grpc-address=127.0.0.1:{sg}",
                                  f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s",
                                  "--log.level=warn"], stdout=logs["store"], stderr=subprocess.STDOUT)
        procs.append(store)
        query = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                                  f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                                  "--log.level=warn"], stdout=logs["query"], stderr=subprocess.STDOUT)
        procs.append(query)
        wait_ready(pport, prom, "prometheus", 120)
        wait_ready(sh, store, "strata store", 60)
        wait_ready(qh, query, "strata query", 60)
        sc, pc = Client(qh), Client(pport)
        start, end = rng["start"], rng["end"]
        t0 = time.time()
        while True:  # the querier has discovered the store
            _, d = sc.query_range("count(up)", start, end, 3600)
            if json.loads(d)["data"]["result"]:
                break
            if time.time() - t0 > 30:
                raise RuntimeError("strata query did not see the store")
            time.sleep(0.2)
        time.sleep(2)
        pids = {"store": store.pid, "query": query.pid, "prometheus": prom.pid}
        idle = {k: proc_status(p) for k, p in pids.items()}
        log("  idle: " + ", ".join(f"{k} {v.get('VmRSS', 0) / 1024:.1f} MiB / {v.get('Threads')} threads"
                                   for k, v in idle.items()))
        qs = [(n, e) for n, e in QUERIES if ONLY in n]
        times = {n: ([], []) for n, _ in qs}
        check = {}
        for rnd in range(ROUNDS + 1):  # round 0 warms up both sides and checks the answers
            for i, (name, expr) in enumerate(qs):
                order = [(0, sc), (1, pc)] if (rnd + i) % 2 == 0 else [(1, pc), (0, sc)]
                out = {}
                for side, c in order:
                    dt, data = c.query_range(expr, start, end, STEP)
                    out[side] = data
                    if rnd:
                        times[name][side].append(dt)
                if rnd == 0:
                    check[name] = compare(name, out[0], out[1])
        after_run = {k: proc_status(p) for k, p in pids.items()}
        time.sleep(SETTLE_S)
        settled = {k: proc_status(p) for k, p in pids.items()}

        ratios = []
        log(f"  {'query':<22} {'strata ms':>10} {'prom ms':>9} {'ratio':>6}  points (exact / within 1e-9)")
        for name, _ in qs:
            ms_s = statistics.median(times[name][0]) * 1000
            ms_p = statistics.median(times[name][1]) * 1000
            r = ms_s / ms_p
            ratios.append(r)
            ex, cl, pts = check[name]
            log(f"  {name:<22} {ms_s:10.1f} {ms_p:9.1f} {r:6.3f}  {pts} ({ex} / {cl})")
            print(f"RESULT dash_{name}_ratio {r:.3f} x (strata {ms_s:.1f} ms, prometheus {ms_p:.1f} ms, "
                  f"median of {ROUNDS})")
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"RESULT dash_latency_geomean_ratio {geo:.3f} x (target <= 0.2)")
        print(f"RESULT dash_latency_max_ratio {max(ratios):.3f} x (target <= 0.5)")
        peak_s = settled["store"].get("VmHWM", 0) + settled["query"].get("VmHWM", 0)
        peak_p = settled["prometheus"].get("VmHWM", 0)
        print(f"RESULT dash_peak_rss_ratio {peak_s / peak_p:.3f} x (store {settled['store'].get('VmHWM', 0) / 1024:.1f} + "
              f"query {settled['query'].get('VmHWM', 0) / 1024:.1f} MiB vs prometheus {peak_p / 1024:.1f} MiB; "
              f"target <= 0.25)")
        for k in ("store", "query", "prometheus"):
            print(f"RESULT dash_rss_{k}_mib idle {idle[k].get('VmRSS', 0) / 1024:.1f} / peak {settled[k].get('VmHWM', 0) / 1024:.1f}"
                  f" / end of run {after_run[k].get('VmRSS', 0) / 1024:.1f} / {SETTLE_S:g}s later "
                  f"{settled[k].get('VmRSS', 0) / 1024:.1f} MiB ({settled[k].get('Threads')} threads)")
        for p in procs:
            stop(p)
        return 0
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
