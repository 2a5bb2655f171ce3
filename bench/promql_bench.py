#!/usr/bin/python3
"""PromQL engine vs Prometheus 2.42 on the same blocks, same run (issue 4's performance targets).

Dataset: 102,700 series (100,000 of them the counter `x`) x 1 day at 15s, one 24h block written by
tests/programs/promql_blockgen, cached under bench/out/promql/data. Prometheus runs over a hardlinked
copy (127.0.0.1, free port). For ROUNDS rounds, every query runs once on each side, alternating query by query:
  Strata:     tests/programs/promql_benchq (one process for the run: blocks opened and mapped once, as in
              a server; engine with a pool of THREADS workers)
  Prometheus: /api/v1/query_range (CPU time from /proc/<pid>/stat, peak memory from VmHWM)
plus `strata tools query` for the two big queries (a process per query: start-up, block open).
PROMQL_BENCH_ONLY=big|dash runs only the big queries or only the dashboard set; PROMQL_BENCH_BASE=<an older
promql_benchq binary> also runs it, alternating with the current one query by query (before/after figures
from the same run; its results must match too).
Medians over rounds. Peak memory = peak anonymous resident memory (resident minus file-backed pages,
sampled every 1-2 ms from /proc/<pid>/statm) during the query minus its level before, for both: what
the engine allocates, not the mmapped block pages both sides read through the page cache. Results of both sides are compared (same series, values within 1e-9).
Prints RESULT lines (bench/run collects them) and a table.
"""
import json, os, threading, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.parse, urllib.request

ROOT = os.environ.get("STRATA_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build/strata"))
TBIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build/tests"))
OUT = os.path.join(ROOT, "bench/out/promql")
ROUNDS = int(os.environ.get("PROMQL_BENCH_ROUNDS", "3"))
THREADS = int(os.environ.get("PROMQL_BENCH_THREADS", "2"))
ONLY = os.environ.get("PROMQL_BENCH_ONLY", "")
BASE = os.environ.get("PROMQL_BENCH_BASE", "")
GEN_VERSION = "1"  # bump when promql_blockgen's output changes

T0 = 1700006400           # first sample (s); the block covers one day
END = T0 + 86400
BIG_START = T0 + 3600     # 300 steps of 276s up to END
BIG_STEP = 276
D_START, D_STEP = END - 6 * 3600, 30  # dashboards: last 6h at 30s (721 steps)

BIG = [
    ("sum_rate", "sum(rate(x[5m]))"),
    ("sum_by_rate", "sum by (job) (rate(x[5m]))"),
]
DASH = [
    ("d01_job_rate", 'sum by (job) (rate(x{job="job-1"}[5m]))'),
    ("d02_code_rate", 'sum by (code) (rate(x{job="job-2",handler="/api/v1/h03"}[5m]))'),
    ("d03_topk_handler", 'topk(5, sum by (handler) (rate(x{job="job-3"}[5m])))'),
    ("d04_error_ratio", 'sum by (instance) (rate(x{job="job-4",code=~"5.."}[5m])) / sum by (instance) (rate(x{job="job-4"}[5m]))'),
    ("d05_p99", 'histogram_quantile(0.99, sum by (le) (rate(lat_seconds_bucket{job="job-1"}[5m])))'),
    ("d06_p90_handler", "histogram_quantile(0.9, sum by (le, handler) (rate(lat_seconds_bucket[5m])))"),
    ("d07_avg_mem", "avg by (job) (mem_bytes)"),
    ("d08_max_mem", 'max_over_time(mem_bytes{job="job-5"}[10m])'),
    ("d09_mem_gb", 'mem_bytes{job="job-6"} / 1e9'),
    ("d10_count_rate", "sum(rate(lat_seconds_count[5m])) by (job)"),
    ("d11_count_series", 'count by (job) (x{code="200"})'),
    ("d12_increase_1h", 'increase(x{job="job-7",instance="10.0.7.7:9100",code="200"}[1h])'),
    ("d13_irate", 'sum by (job) (irate(x{job="job-8",code="500"}[2m]))'),
    ("d14_one_rate", 'rate(x{job="job-9",handler="/api/v1/h01",code="200"}[5m])'),
    ("d15_deriv", 'deriv(mem_bytes{job="job-0"}[15m])'),
    ("d16_quantile", 'quantile(0.95, rate(x{job="job-0",code="200"}[5m]))'),
    ("d17_4xx_by_job", 'sum by (job) (rate(x{code=~"4.."}[5m]))'),
    ("d18_avg_ot", "avg_over_time(mem_bytes[1h])"),
    ("d19_handler_codes", 'sum(rate(x{handler="/api/v1/h05"}[5m])) by (code)'),
    ("d20_predict", 'predict_linear(mem_bytes{job="job-2"}[30m], 3600)'),
]


def log(*a):
    print(*a, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ensure_data():
    data = os.path.join(OUT, "data")
    marker = os.path.join(OUT, "data.version")
    if os.path.exists(marker) and open(marker).read().strip() == GEN_VERSION:
        return data
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    t = time.time()
    subprocess.run([os.path.join(TBIN, "promql_blockgen"), data], check=True, stdout=subprocess.DEVNULL)
    log(f"dataset generated in {time.time() - t:.1f}s")
    with open(marker, "w") as f:
        f.write(GEN_VERSION + "\n")
    return data


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def anon_kb(pid):
    with open(f"/proc/{pid}/statm") as f:
        p = f.read().split()
    return (int(p[1]) - int(p[2])) * (os.sysconf("SC_PAGESIZE") // 1024)


class AnonPeak:
    """Samples a process's anonymous resident memory in a thread while a request runs."""
    def __init__(self, pid):
        self.pid, self.peak, self.run = pid, anon_kb(pid), True
        self.base = self.peak
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while self.run:
            self.peak = max(self.peak, anon_kb(self.pid))
            time.sleep(0.001)

    def stop(self):
        self.run = False
        self.t.join()
        return max(self.peak, anon_kb(self.pid)) - self.base


class Prom:
    def __init__(self, data):
        self.dir = tempfile.mkdtemp(prefix="prom-", dir=OUT)
        for d in os.listdir(data):
            if os.path.exists(os.path.join(data, d, "meta.json")):
                subprocess.run(["cp", "-al", os.path.join(data, d), self.dir], check=True)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        self.port = free_port()
        self.logf = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.p = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
             "--query.timeout=20m", "--query.max-samples=1000000000"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).read()
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError("prometheus did not become ready")

    def query(self, expr, start, end, step):
        q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        pid = self.p.pid
        ap = AnonPeak(pid)
        c0, w0 = proc_cpu_s(pid), time.time()
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/query_range", data=q.encode(),
                                      timeout=1200).read()
        w1, c1 = time.time(), proc_cpu_s(pid)
        mem = ap.stop()
        d = json.loads(body)
        if d.get("status") != "success":
            raise RuntimeError(f"prometheus: {expr}: {d}")
        return (w1 - w0) * 1000, (c1 - c0) * 1000, mem, d["data"]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class StrataBench:
    """One promql_benchq process for the whole run (blocks opened and mapped once, like a server)."""
    def __init__(self, data, resdir, binary=None):
        self.p = subprocess.Popen([binary or os.path.join(TBIN, "promql_benchq"), data, "-", "1", str(THREADS), "0", resdir],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, name, expr, start, end, step):
        """Returns (wall_ms, cpu_ms, mem_kb)."""
        self.p.stdin.write(f"{name}\t{start * 1000}\t{end * 1000}\t{step * 1000}\t{expr}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if not line or line[0] != "Q" or line[1] != name:
            raise RuntimeError(f"promql_benchq failed on {name}: {line}")
        return float(line[2]), float(line[3]), int(line[4])

    def stop(self):
        self.p.stdin.close()
        self.p.wait(60)


def tools_query(data, expr, start, end, step):
    t0 = time.time()
    p = subprocess.Popen([BIN, "tools", "query", f"--data-dir={data}", f"--start={start}", f"--end={end}",
                          f"--step={step}", "--query.timeout=20m", expr], stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise RuntimeError(f"strata tools query failed: {expr}")
    return (time.time() - t0) * 1000, (ru.ru_utime + ru.ru_stime) * 1000, ru.ru_maxrss


def same(a, b):
    """Compare two API data objects (matrix): same series and timestamps, values within 1e-9."""
    def key(s):
        return json.dumps(s["metric"], sort_keys=True)
    ra, rb = {key(s): s["values"] for s in a["result"]}, {key(s): s["values"] for s in b["result"]}
    if ra.keys() != rb.keys():
        return f"series differ ({len(ra)} vs {len(rb)})"
    for k, va in ra.items():
        vb = rb[k]
        if len(va) != len(vb):
            return f"{k}: {len(va)} vs {len(vb)} points"
        for (ta, xa), (tb, xb) in zip(va, vb):
            if ta != tb:
                return f"{k}: timestamp {ta} vs {tb}"
            fa, fb = float(xa), float(xb)
            if fa != fb and not (fa != fa and fb != fb) and abs(fa - fb) > 1e-9 * max(abs(fa), abs(fb)):
                return f"{k} @{ta}: {xa} vs {xb}"
    return None


def main():
    # bench/run's timeout sends SIGTERM: unwind so Prometheus is stopped and its copy removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    os.makedirs(OUT, exist_ok=True)
    for f in ("promql_blockgen", "promql_benchq"):
        if not os.access(os.path.join(TBIN, f), os.X_OK):
            log(f"missing {TBIN}/{f} (build the tests/programs targets)")
            return 1
    data = ensure_data()
    meta = json.load(open(os.path.join(data, os.listdir(data)[0], "meta.json")))
    log(f"dataset: {meta['stats']['numSeries']} series, {meta['stats']['numSamples']} samples")
    big = BIG if ONLY != "dash" else []
    dash = DASH if ONLY != "big" else []
    queries = [(n, e, BIG_START, END, BIG_STEP) for n, e in big] + [(n, e, D_START, END, D_STEP) for n, e in dash]
    resdir = tempfile.mkdtemp(prefix="res-", dir=OUT)
    basedir = tempfile.mkdtemp(prefix="res-base-", dir=OUT)
    prom = Prom(data)
    strata = StrataBench(data, resdir)
    base = StrataBench(data, basedir, BASE) if BASE else None
    S, P, T, B = {}, {}, {}, {}
    mismatches = []
    try:
        big_samples = 0
        if big:
            # stored samples of x the big queries decode: (start - 5m, end]
            n = subprocess.run([BIN, "tools", "query", f"--data-dir={data}", f"--time={END}",
                                f"count_over_time(x[{END - BIG_START + 300}s])"], capture_output=True, text=True,
                               check=True).stdout
            big_samples = sum(int(s["value"][1]) for s in json.loads(n)["result"])
            log(f"big queries decode {big_samples} stored samples of x")
        for r in range(ROUNDS):
            log(f"--- round {r + 1}/{ROUNDS}")
            for name, expr, start, end, step in queries:
                # alternate which of the two Strata binaries goes first
                if base and r % 2:
                    B.setdefault(name, []).append(base.run(name, expr, start, end, step))
                S.setdefault(name, []).append(strata.run(name, expr, start, end, step))
                if base and not r % 2:
                    B.setdefault(name, []).append(base.run(name, expr, start, end, step))
                w, c, m, d = prom.query(expr, start, end, step)
                P.setdefault(name, []).append((w, c, m))
                if r == 0:
                    sd = json.load(open(os.path.join(resdir, name + ".json")))
                    why = same(sd, d)
                    if not why and base:
                        why = same(json.load(open(os.path.join(basedir, name + ".json"))), sd)
                        why = why and "base binary: " + why
                    if why:
                        mismatches.append(f"{name}: {why}")
                        log(f"MISMATCH {name}: {why}")
                extra = f"  base {B[name][-1][0]:9.1f} ms" if base else ""
                log(f"{name:20s} strata {S[name][-1][0]:9.1f} ms  prometheus {w:9.1f} ms{extra}")
            for name, expr, start, end, step in queries[:len(big)]:
                T.setdefault(name, []).append(tools_query(data, expr, start, end, step))
    finally:
        strata.stop()
        if base:
            base.stop()
        prom.stop()
        shutil.rmtree(resdir, ignore_errors=True)
        shutil.rmtree(basedir, ignore_errors=True)

    med = lambda xs, i: statistics.median(x[i] for x in xs)
    log("")
    log(f"{'query':20s} {'strata ms':>10s} {'prom ms':>10s} {'ratio':>7s} {'strata cpu':>10s} {'prom cpu':>10s}"
        f" {'strata MB':>9s} {'prom MB':>9s}")
    for name, *_ in queries:
        sw, pw = med(S[name], 0), med(P[name], 0)
        log(f"{name:20s} {sw:10.1f} {pw:10.1f} {sw / pw:7.3f} {med(S[name], 1):10.1f} {med(P[name], 1):10.1f}"
            f" {med(S[name], 2) / 1024:9.1f} {med(P[name], 2) / 1024:9.1f}")
    if base:
        log("")
        log(f"{'query':20s} {'base ms':>10s} {'strata ms':>10s} {'base cpu':>10s} {'strata cpu':>10s}"
            f" {'base MB':>9s} {'strata MB':>9s}")
        for name, *_ in queries:
            log(f"{name:20s} {med(B[name], 0):10.1f} {med(S[name], 0):10.1f} {med(B[name], 1):10.1f}"
                f" {med(S[name], 1):10.1f} {med(B[name], 2) / 1024:9.1f} {med(S[name], 2) / 1024:9.1f}")
    log("")
    for name, _ in big:
        s_cpu, p_cpu = med(S[name], 1) / 1000, med(P[name], 1) / 1000
        s_rate, p_rate = big_samples / s_cpu / 1e6, big_samples / p_cpu / 1e6
        log(f"RESULT promql_{name}_strata_msamples_per_core_s {s_rate:.1f} M/s")
        log(f"RESULT promql_{name}_prometheus_msamples_per_core_s {p_rate:.1f} M/s")
        log(f"RESULT promql_{name}_speedup_per_core {s_rate / p_rate:.2f} x (target >= 10)")
        log(f"RESULT promql_{name}_strata_wall {med(S[name], 0) / 1000:.2f} s ({THREADS} threads)")
        log(f"RESULT promql_{name}_prometheus_wall {med(P[name], 0) / 1000:.2f} s")
        log(f"RESULT promql_{name}_tools_query_wall {med(T[name], 0) / 1000:.2f} s (process incl. start-up)")
        log(f"RESULT promql_{name}_tools_query_maxrss {med(T[name], 2) / 1024:.0f} MB (incl. mapped chunk pages)")
        log(f"RESULT promql_{name}_strata_peak_mem {med(S[name], 2) / 1024:.1f} MB")
        log(f"RESULT promql_{name}_prometheus_peak_mem {med(P[name], 2) / 1024:.1f} MB")
        if base:
            b_cpu = med(B[name], 1) / 1000
            log(f"RESULT promql_{name}_base_msamples_per_core_s {big_samples / b_cpu / 1e6:.1f} M/s"
                f" (cpu {b_cpu:.2f} s vs {s_cpu:.2f} s)")
    if dash:
        ratios = [med(S[n], 0) / med(P[n], 0) for n, _ in dash]
        log(f"RESULT promql_dashboard_median_latency_ratio {statistics.median(ratios):.3f} x (target <= 0.25)")
        log(f"RESULT promql_dashboard_strata_median_ms {statistics.median(med(S[n], 0) for n, _ in dash):.1f} ms")
        log(f"RESULT promql_dashboard_prometheus_median_ms {statistics.median(med(P[n], 0) for n, _ in dash):.1f} ms")
        if base:
            bratios = [med(B[n], 0) / med(P[n], 0) for n, _ in dash]
            log(f"RESULT promql_dashboard_base_median_latency_ratio {statistics.median(bratios):.3f} x")
            log(f"RESULT promql_dashboard_base_median_ms {statistics.median(med(B[n], 0) for n, _ in dash):.1f} ms")
    smem = [med(S[n], 2) for n, *_ in queries]
    pmem = [med(P[n], 2) for n, *_ in queries]
    log(f"RESULT promql_peak_mem_strata_max {max(smem) / 1024:.1f} MB")
    log(f"RESULT promql_peak_mem_prometheus_max {max(pmem) / 1024:.1f} MB")
    log(f"RESULT promql_peak_mem_ratio_of_max {max(smem) / max(max(pmem), 1):.3f} x (target <= 0.5)")
    log(f"RESULT promql_bench_result_mismatches {len(mismatches)} queries")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
