"""WAL compatibility with Prometheus 2.42, both ways.

Strata -> Prometheus: `strata receive` takes 75 minutes of 15s samples for 300 series (full chunks
go to chunks_head/, the rest stays in the WAL) and is killed with SIGKILL. A copy of the tenant
directory is then (1) dumped with `promtool tsdb dump` (Prometheus's own code replaying our WAL and
head chunks): every acknowledged sample with its value, once; (2) opened by a real Prometheus 2.42,
whose answers to PromQL queries equal `strata query`'s over the restarted receiver.

Prometheus -> Strata: a Prometheus 2.42 with --web.enable-remote-write-receiver takes the same kind of
load from the load generator and is killed with SIGKILL; its data directory becomes a tenant
directory of `strata receive`, which replays Prometheus's WAL and head chunks: every acknowledged
sample is served over the StoreAPI, once.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, free_port, stop, wait_ready  # noqa: E402
from lib_receive import Receiver, loadgen, query_proc  # noqa: E402

H = Harness("receive_wal_compat")
if not shutil.which("prometheus") or not shutil.which("promtool"):
    H.result("setup", False, "prometheus/promtool not installed")
    sys.exit(1)
tmp = tempfile.mkdtemp(prefix="strata-receive-walcompat-")
SERIES, BATCH, ROUNDS, INTERVAL = 300, 100, 300, 15000
START = (int(time.time()) - 80 * 60) * 1000 // INTERVAL * INTERVAL
procs = []


def value_of(i, r):
    return i + r * (1 + i % 7)


def prometheus(datadir, extra=()):
    port = free_port()
    cfg = os.path.join(tmp, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1h}\n")
    log = open(os.path.join(tmp, f"prom-{port}.log"), "w")
    p = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={datadir}",
                          f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"] + list(extra),
                         stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    wait_ready(port, p, "prometheus", timeout=60)
    return p, port


def query(port, q, t):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{t / 1000:.3f}"})
    data = json.load(urllib.request.urlopen(url, timeout=60))
    return sorted((json.dumps({k: v for k, v in s["metric"].items() if k not in ("tenant_id",)}, sort_keys=True),
                   s["value"][1]) for s in data["data"]["result"])


try:
    # ---- Strata -> Prometheus ----
    r = Receiver(tmp).start()
    ack = os.path.join(tmp, "ack.log")
    rc, out = loadgen("write", f"--url={r.url}", f"--series={SERIES}", f"--batch={BATCH}", f"--rounds={ROUNDS}",
                      f"--start={START}", f"--interval={INTERVAL}", "--concurrency=3", f"--ack-log={ack}")
    H.result("strata_ingest", rc == 0, out)
    time.sleep(1.5)  # buffered head chunks are written out every second
    r.kill9()
    tenant = os.path.join(r.tsdb, "default-tenant")
    H.result("head_chunks_written", any(os.path.getsize(os.path.join(tenant, "chunks_head", f)) > 8
                                        for f in os.listdir(os.path.join(tenant, "chunks_head"))))
    dump_dir = os.path.join(tmp, "dump")
    shutil.copytree(tenant, dump_dir)
    out = subprocess.run(["promtool", "tsdb", "dump", dump_dir], capture_output=True, text=True, timeout=300)
    seen, bad = {}, []
    for line in out.stdout.splitlines():
        m = re.match(r'\{(.*)\} (\S+) (\d+)$', line)
        if not m or "rw_metric_" not in m.group(1):
            continue
        i = int(re.search(r'pod="pod-(\d+)"', m.group(1)).group(1))
        t = int(m.group(3))
        rr = (t - START) // INTERVAL
        if (i, rr) in seen:
            bad.append(f"series {i} round {rr} twice")
        seen[(i, rr)] = float(m.group(2))
        if float(m.group(2)) != value_of(i, rr):
            bad.append(f"series {i} round {rr}: {m.group(2)} != {value_of(i, rr)}")
    with open(ack) as f:
        acked = [tuple(map(int, line.split())) for line in f if line.strip()]
    missing = [(rr, b) for rr, b in acked for i in range(b * BATCH, (b + 1) * BATCH) if (i, rr) not in seen]
    H.result("promtool_dump_reads_strata_wal", out.returncode == 0 and not bad and not missing and
             len(seen) == SERIES * ROUNDS, f"rc={out.returncode} {out.stderr[-300:]} samples={len(seen)} "
             f"bad={bad[:3]} missing={missing[:3]}")
    prom_dir = os.path.join(tmp, "prom-copy")
    shutil.copytree(tenant, prom_dir)
    p, pport = prometheus(prom_dir)
    r.start()
    qp, qport = query_proc(tmp, [r.grpc])
    procs.append(qp)
    same = True
    detail = ""
    for q in ("count(count by (__name__) ({__name__=~\"rw_metric_.*\"}))", "sum(rw_metric_7)",
              "rate(rw_metric_3[5m])", "count_over_time(rw_metric_11[30m])", "max by (zone) (rw_metric_199)"):
        for t in (START + 60 * INTERVAL, START + (ROUNDS - 1) * INTERVAL, START + 150 * INTERVAL + 7000):
            a, b = query(pport, q, t), query(qport, q, t)
            if a != b or not a:
                same = False
                detail = f"{q} at {t}: prometheus {a[:2]} strata {b[:2]}"
    H.result("prometheus_replays_strata_tenant_dir_same_answers", same, detail)
    stop(qp)
    stop(p)
    r.stop()

    # ---- Prometheus -> Strata ----
    pdir = os.path.join(tmp, "prom-rw")
    p, pport = prometheus(pdir, ["--web.enable-remote-write-receiver"])
    ack2 = os.path.join(tmp, "ack2.log")
    rc, out = loadgen("write", f"--url=http://127.0.0.1:{pport}/api/v1/write", f"--series={SERIES}",
                      f"--batch={BATCH}", f"--rounds={ROUNDS}", f"--start={START}", f"--interval={INTERVAL}",
                      "--concurrency=3", f"--ack-log={ack2}")
    H.result("prometheus_ingest", rc == 0, out)
    p.kill()
    p.wait()
    tsdb2 = os.path.join(tmp, "tsdb2")
    os.makedirs(tsdb2)
    shutil.copytree(pdir, os.path.join(tsdb2, "default-tenant"))
    r2 = Receiver(tmp, tsdb=tsdb2, name="receive2").start()
    rc, out = loadgen("verify", f"--grpc=127.0.0.1:{r2.grpc}", f"--ack-log={ack2}", f"--series={SERIES}",
                      f"--batch={BATCH}", f"--start={START}", f"--interval={INTERVAL}")
    H.result("strata_replays_prometheus_wal", rc == 0 and f"acked={SERIES * ROUNDS} " in out, out)
    rc2 = r2.stop()
    H.result("clean_exit", rc2 == 0, f"exit status {rc2}")
finally:
    for p in procs:
        stop(p)
sys.exit(1 if H.failed else 0)
