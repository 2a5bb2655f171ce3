"""`strata rule` vs Prometheus 2.42 on the same recording rules and data (issue 17).

A scrape target serves RULE_BENCH_SERIES gauges bench_value{shard="0".."R-1", i="0"..} (R = RULE_BENCH_RULES),
values changing every scrape; one Prometheus scrapes it every 5s. RULE_BENCH_RULES recording rules, 10
groups evaluated every 30s, each `sum by (i) (bench_value{shard="k"})` (every rule reads SERIES/RULES
series and writes as many): Prometheus evaluates them on its own TSDB; `strata rule` sends each to a
`strata query` over that Prometheus's sidecar (remote read), stores the results in its head + WAL.

RULE_BENCH_RULE_ARGS: more `strata rule` flags (e.g. --rules.max-concurrent-evals=1).
RULE_BENCH_COMPARE: a second querier + ruler alongside, over the same sidecar, from another strata binary (a path)
or this one with other ruler flags ("flags:--rules.max-concurrent-evals=1"); their round times side by side.
RULE_BENCH_PERF=<dir>: `perf record -g` of the ruler and the querier over one round after the warm-up.

Reported after 3 warm-up rounds, over ROUNDS rounds: the time a round of every group takes (the sum of
prometheus_rule_group_last_duration_seconds over the groups, which both export; groups run in parallel,
so the max is also given), the ratio ruler / Prometheus, and the ruler's RSS.
"""
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from lib_harness import free_port, stop, wait_ready  # noqa: E402

BIN = os.environ.get("STRATA_BIN", "build/strata")
RULES = int(os.environ.get("RULE_BENCH_RULES", "1000"))
SERIES = int(os.environ.get("RULE_BENCH_SERIES", "100000"))
ROUNDS = int(os.environ.get("RULE_BENCH_ROUNDS", "4"))
RULE_ARGS = os.environ.get("RULE_BENCH_RULE_ARGS", "").split()  # extra `strata rule` flags
# another strata binary (an older build) or "flags:--x=y ..." (this binary, other ruler flags): a second querier
# and ruler run alongside the first over the same sidecar, so both see the same load
COMPARE = os.environ.get("RULE_BENCH_COMPARE")
PERF = os.environ.get("RULE_BENCH_PERF")  # a directory: `perf record -g` of the ruler and the querier, one round
GROUPS = 10
PER = max(1, SERIES // RULES)

tmp = tempfile.mkdtemp(prefix="strata-rule-bench-")
procs = []
gen = [0]


def body():
    g = gen[0]
    return "".join(f'bench_value{{shard="{s}",i="{i}"}} {(s * 7 + i + g) % 1000}\n'
                   for s in range(RULES) for i in range(PER)).encode()


cache = {"g": -1, "b": b""}


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if cache["g"] != gen[0]:
            cache["b"], cache["g"] = body(), gen[0]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(cache["b"])
        gen[0] += 1

    def log_message(self, *a):
        pass


def start(name, args):
    p = subprocess.Popen(args, stdout=open(os.path.join(tmp, name + ".log"), "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()


def group_durations(port):
    out = {}
    for line in metrics(port).splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            out[line.split("{", 1)[1].split("}")[0]] = float(line.rsplit(" ", 1)[1])
    return out


def metric(port, name):
    for line in metrics(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main():
    tport = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", tport), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rules = os.path.join(tmp, "bench.rules.yml")
    with open(rules, "w") as f:
        f.write("groups:\n")
        for g in range(GROUPS):
            f.write(f"- name: bench-{g}\n  interval: 30s\n  rules:\n")
            for k in range(g, RULES, GROUPS):
                f.write(f"  - record: bench:value:sum_{k}\n    expr: sum by (i) (bench_value{{shard=\"{k}\"}})\n")
    pport = free_port()
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write(f"""global: {{scrape_interval: 5s, scrape_timeout: 5s, evaluation_interval: 30s, external_labels: {{prom: p}}}}
rule_files: [{rules}]
scrape_configs: [{{job_name: bench, static_configs: [{{targets: ['127.0.0.1:{tport}']}}]}}]
""")
    p = start("prometheus", ["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/prom",
                             f"--web.listen-address=127.0.0.1:{pport}", "--storage.tsdb.min-block-duration=2h",
                             "--storage.tsdb.max-block-duration=2h"])
    wait_ready(pport, p, "prometheus", 120)
    sg, sh = free_port(), free_port()
    s = start("sidecar", [BIN, "sidecar", f"--prometheus.url=http://127.0.0.1:{pport}", f"--tsdb.path={tmp}/prom",
                          f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}"])
    wait_ready(sh, s, "sidecar", 120)
    qh = free_port()
    q = start("query", [BIN, "query", f"--http-address=127.0.0.1:{qh}", f"--grpc-address=127.0.0.1:{free_port()}",
                        f"--endpoint=127.0.0.1:{sg}"])
    wait_ready(qh, q, "query", 120)
    rh = free_port()
    r = start("rule", [BIN, "rule", f"--rule-file={rules}", f"--data-dir={tmp}/rule", f"--query=127.0.0.1:{qh}",
                       f"--http-address=127.0.0.1:{rh}", f"--grpc-address=127.0.0.1:{free_port()}",
                       '--label=ruler="bench"'] + RULE_ARGS)
    wait_ready(rh, r, "rule", 120)
    ch = None
    if COMPARE:
        cbin, cargs = (BIN, COMPARE[6:].split()) if COMPARE.startswith("flags:") else (COMPARE, [])
        cq = free_port()
        q2 = start("query2", [cbin, "query", f"--http-address=127.0.0.1:{cq}", f"--grpc-address=127.0.0.1:{free_port()}",
                              f"--endpoint=127.0.0.1:{sg}"])
        wait_ready(cq, q2, "query2", 120)
        ch = free_port()
        r2 = start("rule2", [cbin, "rule", f"--rule-file={rules}", f"--data-dir={tmp}/rule2", f"--query=127.0.0.1:{cq}",
                             f"--http-address=127.0.0.1:{ch}", f"--grpc-address=127.0.0.1:{free_port()}",
                             '--label=ruler="compare"'] + cargs)
        wait_ready(ch, r2, "rule2", 120)
        print(f"comparing with {COMPARE} (its own querier over the same sidecar)", flush=True)
    print(f"{RULES} rules in {GROUPS} groups over {RULES * PER} series; warming up 3 rounds (90s)", flush=True)
    time.sleep(95)
    if PERF:
        os.makedirs(PERF, exist_ok=True)
        perf = [subprocess.Popen(["perf", "record", "-g", "-o", os.path.join(PERF, f"{n}.perf.data"), "-p",
                                  str(pr.pid), "--", "sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for n, pr in (("rule", r), ("query", q))]
        for pp in perf:
            pp.wait()
        print(f"perf data of one round in {PERF}/rule.perf.data and {PERF}/query.perf.data", flush=True)
    ps, rs, pm, rm, rss, cs = [], [], [], [], [], []
    fs0 = (metric(rh, "prometheus_tsdb_wal_fsync_duration_seconds_sum"),
           metric(rh, "prometheus_tsdb_wal_fsync_duration_seconds_count"))
    for _ in range(ROUNDS):
        pd, rd = group_durations(pport), group_durations(rh)
        ps.append(sum(pd.values()))
        rs.append(sum(rd.values()))
        pm.append(max(pd.values() or [0]))
        rm.append(max(rd.values() or [0]))
        rss.append(metric(rh, "process_resident_memory_bytes"))
        if ch:
            cs.append(sum(group_durations(ch).values()))
        print(f"round: prometheus sum {ps[-1]:.3f}s max {pm[-1]:.3f}s; ruler sum {rs[-1]:.3f}s max {rm[-1]:.3f}s; "
              f"ruler rss {rss[-1] / 2**20:.1f} MiB" + (f"; compared ruler sum {cs[-1]:.3f}s" if ch else ""), flush=True)
        time.sleep(30)
    failures = metric(rh, "prometheus_rule_evaluation_failures_total")
    fsyncs = metric(rh, "prometheus_tsdb_wal_fsync_duration_seconds_count") - fs0[1]
    fsync_s = metric(rh, "prometheus_tsdb_wal_fsync_duration_seconds_sum") - fs0[0]
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"RESULT rule_round_prometheus {med(ps):.3f} s sum of group durations, {RULES} rules over {RULES * PER} series")
    print(f"RESULT rule_round_ruler {med(rs):.3f} s same rules through strata query + sidecar")
    print(f"RESULT rule_round_ratio {med(rs) / med(ps):.1f} x ruler/Prometheus (max group: {med(rm) / med(pm):.1f}x; "
          f"per round: {', '.join(f'{r / p:.1f}' for r, p in zip(rs, ps))})")
    print(f"RESULT rule_ruler_rss {max(rss) / 2**20:.1f} MiB ({failures:.0f} evaluation failures)")
    if ch:
        print(f"RESULT rule_round_compared {med(cs):.3f} s, {med(cs) / med(ps):.1f} x Prometheus; this ruler / compared: "
              f"{med(rs) / med(cs):.2f} (per round: {', '.join(f'{r / c:.2f}' for r, c in zip(rs, cs))})")
    print(f"ruler WAL: {fsyncs:.0f} fsyncs taking {fsync_s:.1f}s over the measured rounds", flush=True)
    return 0


try:
    rc = main()
finally:
    for p in reversed(procs):
        stop(p)
sys.exit(rc)
