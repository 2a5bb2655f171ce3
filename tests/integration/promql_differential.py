#!/usr/bin/python3
"""Differential test: the same blocks queried through `strata tools query` and a real Prometheus 2.42.

Generates counters (with resets), gauges (with gaps), classic histograms and churning series as
OpenMetrics, turns them into blocks with promtool, starts Prometheus (127.0.0.1, free port) over a
copy, and runs every query (instant and range) through both. Results must agree: same series, same
timestamps, values equal (or within the last ulp). Error cases must fail in both.
Prints "PASS promqldiff:<n>" / "FAIL promqldiff:<n>: why" per query.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request

# dataset, query set and comparison are shared with storegw_differential.py
from lib_promql_queries import EXTRA, QUERIES, T0, compare, free_port, gen, prom_query

STRATA = os.environ.get("STRATA_BIN", "build/strata")

MATCHING_ERRORS = ("found duplicate series for the match group", "multiple matches for labels")

def strata_query(data, expr, params):
    args = [STRATA, "tools", "query", "--stats", f"--data-dir={data}"]
    if "step" in params:
        args += [f"--start={params['start']}", f"--end={params['end']}", f"--step={params['step']}"]
    else:
        args += [f"--time={params['time']}"]
    p = subprocess.run(args + ["--", expr], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return {"status": "error", "error": p.stderr.strip()}
    st = dict(l.split() for l in p.stderr.splitlines() if l.startswith(("peakSamples ", "totalQueryableSamples ")))
    return {"status": "success", "data": json.loads(p.stdout), "peak": int(st["peakSamples"]) if st else None,
            "total": int(st["totalQueryableSamples"]) if st else None}

def main():
    tmp = tempfile.mkdtemp(prefix="promqldiff.")
    proc = None
    try:
        om = os.path.join(tmp, "in.om")
        gen(om)
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL promqldiff: promtool: {r.stderr.strip()}")
            return 1
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(data, pdata)
        cfg = os.path.join(tmp, "prom.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        port = free_port()
        proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={pdata}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as rr:
                    if rr.status == 200:
                        break
            except Exception:
                time.sleep(0.2)
        else:
            print("FAIL promqldiff: prometheus did not become ready")
            return 1
        failed = 0
        n = 0
        for expr, fail in QUERIES + EXTRA:
            for params in ({"time": T0 + 3600}, {"time": T0 + 5400.5},
                           {"start": T0 + 1800, "end": T0 + 7000, "step": 97}):
                n += 1
                p = prom_query(port, expr, dict(params, stats="all"))
                s = strata_query(data, expr, params)
                name = f"promqldiff:{expr} {params}"
                if fail:
                    why = None if (p["status"] == "error" and s["status"] == "error") else \
                        f"expected both to fail: prometheus={p['status']} strata={s['status']}"
                    # strata tools query prints "strata tools query: <type>: <message>"
                    if not why and p.get("error", "").startswith(MATCHING_ERRORS):
                        want = f": {p['errorType']}: {p['error']}"
                        if not s["error"].endswith(want):
                            why = f"error text differs:\n  prometheus {p['error']}\n  strata     {s['error']}"
                elif fail is None and p["status"] == "error":
                    why = None if s["status"] == "error" else f"prometheus failed ({p.get('error')}), strata did not"
                else:
                    why = compare(p, s)
                    # --query.max-samples fails exactly when Prometheus would: same peak count
                    pp = p.get("data", {}).get("stats", {}).get("samples", {}).get("peakSamples")
                    if not why and pp is not None and pp != s.get("peak"):
                        why = f"peak samples: prometheus {pp}, strata {s.get('peak')}"
                    # and `tools query --stats` reads as many samples as Prometheus says it did
                    pt = p.get("data", {}).get("stats", {}).get("samples", {}).get("totalQueryableSamples")
                    if not why and pt is not None and pt != s.get("total"):
                        why = f"totalQueryableSamples: prometheus {pt}, strata {s.get('total')}"
                if why:
                    failed += 1
                    print(f"FAIL {name}: {why}")
                else:
                    print(f"PASS {name}")
        print(f"{n - failed}/{n} differential checks agree ({len(QUERIES) + len(EXTRA)} queries)")
        return 1 if failed else 0
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
