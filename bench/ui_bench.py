#!/usr/bin/python3
"""Web UI benchmark: Strata's UI (strata query over strata store over a FILESYSTEM bucket) against
Prometheus 2.42's own UI (Debian's prometheus serves the classic UI at /classic/graph) over the same
promtool-made blocks, both rendered by the same Debian chromium (playwright-core), alternating, one
browser, a fresh page per measurement.

Data: UI_BENCH_SERIES gauges (default 1000) x UI_BENCH_POINTS samples 15 s apart (default 1000); the
graph asks for exactly those steps (step 15 s), so each UI draws series x points.

Per UI, median of UI_BENCH_ROUNDS (default 5):
  bundle     bytes of the HTML and every script and stylesheet, each gzip -9 (as served compressed;
             Strata's are stored so): "initial", what the empty graph page requests before its load
             event (what it needs to take a query); "all", what a one-series graph opened from a URL
             loads until it is drawn, the editor is in and the network is idle (every chunk);
  load       navigation start -> load event of the empty graph page;
  first      navigation start -> the graph of the query drawn (URL state opens it): page load + query +
             render, what a user waits for after clicking an alert link;
  render     the query_range response's last byte -> the graph drawn (one line per series and the
             legend complete), i.e. the UI's own work without the query.
RESULT lines give each number and the Strata/Prometheus ratios.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("STRATA_ROOT", os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from lib_harness import free_port, stop, wait_ready  # noqa: E402

STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
SERIES = int(os.environ.get("UI_BENCH_SERIES", "1000"))
POINTS = int(os.environ.get("UI_BENCH_POINTS", "1000"))
ROUNDS = int(os.environ.get("UI_BENCH_ROUNDS", "5"))
STEP = 15


def main():
    tmp = tempfile.mkdtemp(prefix="strata-ui-bench.")
    procs = []
    try:
        end = (int(time.time()) - 3600) // 3600 * 3600
        start = end - (POINTS - 1) * STEP
        om = os.path.join(tmp, "data.om")
        with open(om, "w") as f:
            f.write("# TYPE bench_gauge gauge\n")
            for i in range(POINTS):
                t = start + i * STEP
                for s in range(SERIES):
                    f.write(f'bench_gauge{{series="s{s:04d}",group="g{s % 10}"}} {(s * 7 + i) % 100} {t}\n')
            f.write("# EOF\n")
        blocks = os.path.join(tmp, "blocks")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, blocks], check=True,
                       stdout=subprocess.DEVNULL)
        os.unlink(om)
        prom_dir = os.path.join(tmp, "prom")
        shutil.copytree(blocks, prom_dir)
        bucket = os.path.join(tmp, "bucket")
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bucket}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                        '--label=cluster="bench"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def start_proc(name, argv):
            p = subprocess.Popen(argv, stdout=open(os.path.join(tmp, name + ".log"), "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global: {}\n")
        pport = free_port()
        prom = start_proc("prometheus", ["prometheus", "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                         "--storage.tsdb.path=" + prom_dir, "--storage.tsdb.retention.time=100y",
                                         f"--web.listen-address=127.0.0.1:{pport}"])
        sg, sh = free_port(), free_port()
        store = start_proc("store", [STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                                     f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}",
                                     "--http-grace-period=1s"])
        qh, qg = free_port(), free_port()
        query = start_proc("query", [STRATA, "query", f"--http-address=127.0.0.1:{qh}", f"--grpc-address=127.0.0.1:{qg}",
                                     f"--endpoint=127.0.0.1:{sg}", "--http-grace-period=1s", "--grpc-grace-period=1s"])
        wait_ready(pport, prom, "prometheus", 60)
        wait_ready(sh, store, "strata store", 60)
        wait_ready(qh, query, "strata query", 60)
        # Both answer the bench query with every series before the browser starts.
        for base in (f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{qh}"):
            for _ in range(100):
                u = f"{base}/api/v1/query_range?query=bench_gauge&start={start}&end={end}&step={STEP}"
                if len(json.load(urllib.request.urlopen(u, timeout=60))["data"]["result"]) == SERIES:
                    break
                time.sleep(0.3)
            else:
                raise RuntimeError(f"{base} does not answer {SERIES} series")
        env = dict(os.environ, BENCH_STRATA=f"http://127.0.0.1:{qh}", BENCH_PROM=f"http://127.0.0.1:{pport}",
                   BENCH_START=str(start), BENCH_END=str(end), BENCH_STEP=str(STEP), BENCH_SERIES=str(SERIES),
                   BENCH_POINTS=str(POINTS), BENCH_ROUNDS=str(ROUNDS))
        r = subprocess.run(["node", os.path.join(HERE, "ui_bench.mjs")], env=env, timeout=1200)
        return r.returncode
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
