#!/usr/bin/python3
"""Differential test of query statistics: `strata query` (over `strata store` over a FILESYSTEM bucket)
against a real Prometheus 2.42 started with --enable-feature=promql-per-step-stats, over the same
promtool-built blocks.

The PromQL differential dataset (lib_promql_queries.gen, 2h of counters, gauges with gaps, histograms,
churning series) plus 600 `bulk_total` series sampled every 15s (batches of 256 series that go to the
engine's worker pool). Every query of lib_promql_queries.QUERIES and of lib_promql_queries.EXTRA (@,
subqueries, timestamp(), ...) plus a few over the bulk series runs with stats=all as instant queries
at two times and as range queries with two steps (one not dividing the range, starting before the
data); data.stats.samples must agree exactly: totalQueryableSamples, totalQueryableSamplesPerStep
([t, n] per step) and peakSamples. Errors must be errors in both (same status and errorType).
Prints "PASS promql_stats:<group>" / "FAIL ...: why" (the first differing queries in the reason).
"""
import json, os, shutil, subprocess, sys, tempfile, urllib.error, urllib.parse, urllib.request

from lib_harness import Harness, free_port, stop, wait_ready, wait_until
from lib_promql_queries import EXTRA, QUERIES, T0, gen

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("promql_stats")
BULK = 600

PARAMS = [{"time": T0 + 3600}, {"time": T0 + 7190.5}, {"start": T0 + 1800, "end": T0 + 3600, "step": 300},
          {"start": T0 - 600, "end": T0 + 7800, "step": 97}]
BULK_QUERIES = ["sum(rate(bulk_total[5m]))", "bulk_total", "count_over_time(bulk_total[10m])",
                "sum by (shard) (increase(bulk_total[1h]))", 'timestamp(bulk_total{shard="s1"})',
                "max_over_time(bulk_total[10m:1m])", "quantile_over_time(0.5, bulk_total[5m])",
                f"rate(bulk_total[5m] @ {T0 + 3600})", "count(bulk_total) + sum(bulk_total offset 1h)"]


def query(port, expr, params):
    data = urllib.parse.urlencode(dict(params, query=expr, stats="all")).encode()
    path = "/api/v1/query_range" if "step" in params else "/api/v1/query"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def samples(status, j):
    if j.get("status") != "success":
        return ("error", status, j.get("errorType"))
    return j["data"]["stats"]["samples"]


def main():
    tmp = tempfile.mkdtemp(prefix="promqlstats.")
    procs = []
    try:
        om = os.path.join(tmp, "in.om")
        gen(om, bulk=BULK, bulk_step=15)
        blocks = os.path.join(tmp, "blocks")
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, blocks], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"promtool: {r.stderr.strip()[-300:]}")
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(blocks, pdata)
        cfg = os.path.join(tmp, "prom.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        pport = free_port()
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={pdata}",
                                 f"--web.listen-address=127.0.0.1:{pport}", "--storage.tsdb.retention.time=100y",
                                 "--enable-feature=promql-per-step-stats"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)

        bucket = f"type: FILESYSTEM\nconfig: {{directory: {os.path.join(tmp, 'fs')}}}"
        r = subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + bucket, "--path=" + blocks,
                            '--label=cluster="eu1"'], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"upload-blocks: {r.stderr.strip()[-300:]}")
        sg, sh, qg, qh = free_port(), free_port(), free_port(), free_port()
        log = open(os.path.join(tmp, "store.log"), "w")
        st = subprocess.Popen([STRATA, "store", "--objstore.config=" + bucket, "--data-dir=" + os.path.join(tmp, "sdata"),
                               f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s"],
                              stdout=log, stderr=subprocess.STDOUT)
        procs.append(st)
        qlog = open(os.path.join(tmp, "query.log"), "w")
        qp = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                               f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                               "--store.sd-dns-interval=1s", "--query.replica-label=cluster"],
                              stdout=qlog, stderr=subprocess.STDOUT)
        procs.append(qp)
        wait_ready(pport, prom, "prometheus")
        wait_until(lambda: query(qh, "count(bulk_total)", {"time": T0 + 3600})[1]["data"]["result"], qp,
             "strata query over the store")

        groups = [("lib_queries", [e for e, _ in QUERIES]), ("differential_extra", [e for e, _ in EXTRA]),
                  ("bulk", BULK_QUERIES)]
        for name, exprs in groups:
            bad, n, nonzero = [], 0, 0
            for expr in exprs:
                for params in PARAMS:
                    n += 1
                    p = samples(*query(pport, expr, params))
                    s = samples(*query(qh, expr, params))
                    if isinstance(p, dict):
                        nonzero += p["totalQueryableSamples"] > 0
                    if p != s:
                        bad.append(f"{expr} {params}: prometheus {json.dumps(p)[:300]} strata {json.dumps(s)[:300]}")
            harness.result(f"{name}_samples_equal", not bad, f"{len(bad)}/{n} differ: " + " | ".join(bad[:3]))
            # the comparison must be about real counts, not zeros on both sides
            harness.result(f"{name}_counts_nonzero", nonzero > n // 2, f"only {nonzero}/{n} answers read samples")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a test failure with its message
        harness.result("setup", False, f"{type(e).__name__}: {e}")
    sys.exit(1 if harness.failed else 0)
