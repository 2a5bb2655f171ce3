#!/usr/bin/python3
"""One query must never take the querier down (issue 25): hostile and careless queries against
`strata query` over `strata store` (and `strata tools query` over the same blocks), each answered with
the status and errorType a real Prometheus 2.42 gives for it, the querier alive after each with its peak
RSS under a stated bound, and a normal query answering in time after each (and during the longest).

Data: `up` and `c_total` for 3 jobs x 10 instances, 2h at 15 s, turned into blocks by promtool, served
by Prometheus (a copy) and by `strata store` over a FILESYSTEM bucket with `strata query` in front. Both
run with --query.max-samples=5000000; Strata with --query.max-memory=256MiB.

Queries (QUERIES): subqueries of 1 ms resolution over growing ranges, huge subquery resolutions in
range queries, operator chains of 1,000 terms (compared with Prometheus: status, errorType, values)
and of 20,000 terms (Prometheus needs minutes for those on this machine; Strata's values are checked
against Prometheus's answer to the equivalent short query), count_values and label_replace/label_join
producing many series and very long label values, many matchers, k beyond int64, more than 11,000
points. Where Prometheus 2.42 cannot answer within the test's time (it walks every 1 ms step of a
10000-day range before reaching any data, not checking its timeout there, and then fails with "too
many samples"), the expected errorType is the one it ends with, and the reason is stated.
Prints "PASS limits:<query> ..." / "FAIL ...".
"""
import json, os, resource, shutil, subprocess, sys, tempfile, threading, time, urllib.error, urllib.parse, urllib.request

from lib_harness import Harness, free_port, stop, wait_ready, wait_until
from lib_promql_queries import compare, prom_query, start_prometheus

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
T0 = 1700000000
TQ = T0 + 7000  # instant queries: near the end of the data
MAX_SAMPLES = 5000000
MAX_MEMORY = "256MiB"
RSS_BOUND_MB = 400  # querier peak RSS over the whole test: the 256 MiB budget plus the process's own
NORMAL_MS = 5000    # a normal query answers within this after each hostile one
harness = Harness("limits")


def chain(term, op, n):
    return f" {op} ".join([term] * n)


RANGE = {"start": T0 + 600, "end": T0 + 7200, "step": 60}
# (expr, params, expect): expect "prom" = what Prometheus answers (same status and errorType, equal
# values on success); ("same", expr2) = succeeds with the values Prometheus gives for expr2 (too slow
# for Prometheus itself); ("error", errorType, why) = Prometheus cannot answer in time, why says what it
# would end with.
SLOW = "Prometheus 2.42 walks every 1ms step of the range, {} per series, before reaching the data (its " \
       "timeout is not checked there) and then fails with too many samples (execution)"
QUERIES = [
    ("count_over_time(up[10m:100ms])", None, "prom"),
    ("count_over_time(up[10m:1ms])", None, "prom"),
    ("count_over_time(up[30m:1ms])", None, "prom"),
    ("sum_over_time(up[1h:1ms])", None, "prom"),
    ("max_over_time(up[2h:1ms])", None, "prom"),
    ("rate(c_total[5m:1ms])", None, "prom"),
    ("sum_over_time(up[5m:1ms])", RANGE, "prom"),
    ("max_over_time(c_total[1h:10ms])", RANGE, "prom"),
    ("count_over_time(up[1d:1ms])", None, ("error", "execution", SLOW.format("86 million steps"))),
    ("count_over_time(up[100d:1ms])", None, ("error", "execution", SLOW.format("8.6 billion steps"))),
    ("sum_over_time(up[10000d:1ms])", None, ("error", "execution", SLOW.format("864 billion steps"))),
    ("sum_over_time(up[10000d:1ms])", RANGE, ("error", "execution", SLOW.format("864 billion steps"))),
    ("up[10000d:1ms]", None, ("error", "execution", SLOW.format("864 billion steps"))),
    (chain("up", "+", 1000), None, "prom"),
    (chain("up", "^", 1000), None, "prom"),
    (chain("1", "+", 1000), None, "prom"),
    (chain("up", "and", 1000), None, "prom"),
    (chain("c_total", "/ on(job, instance)", 1000), None, "prom"),
    (f"sum({chain('up', '+', 300)})", RANGE, "prom"),
    (chain("up", "+", 20000), None, ("same", "20000 * up")),
    (chain("up", "^", 20000), None, ("same", "up ^ up")),
    (chain("1", "+", 20000), None, ("same", "20000")),
    (f"sum({chain('up', '*', 5000)})", RANGE, ("same", "sum(up)")),
    ('count_values("v", c_total)', RANGE, "prom"),
    ('count_values by (instance) ("job", c_total)', RANGE, "prom"),
    ('count(label_replace(c_total, "v", "$1", "__name__", "(.*)") or label_replace(up, "v", "$1", "job", "(.*)"))',
     RANGE, "prom"),
    ('label_replace(up, "x", "' + "$1" * 20000 + '", "job", "(.*)")', None, "prom"),
    ('label_join(up, "x", "-", ' + ", ".join(['"instance"'] * 3000) + ")", None, "prom"),
    ("up{" + ", ".join(f'job!="nope{i}"' for i in range(1000)) + "}", None, "prom"),
    ("topk(1e19, up)", None, "prom"),
    ("bottomk(-9.3e18, up)", None, "prom"),
    ("up", {"start": T0, "end": T0 + 7200, "step": 0.5}, "prom"),  # 14,401 points: bad_data
]


def get(port, expr, params, timeout=120):
    """The JSON answer and the HTTP status of a query to port (query_range when params has a step)."""
    data = urllib.parse.urlencode(dict(params, query=expr)).encode()
    path = "/api/v1/query_range" if "step" in params else "/api/v1/query"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=timeout) as r:
            return json.load(r), r.status
    except urllib.error.HTTPError as e:
        return json.load(e), e.code


def gen(path):
    out = ["# TYPE up gauge"]
    for j in range(3):
        for i in range(10):
            for k in range(480):
                out.append(f'up{{job="j{j}",instance="i{i}"}} {int((k + i + j) % 13 != 0)} {T0 + k * 15}')
    out.append("# TYPE c_total counter")
    for j in range(3):
        for i in range(10):
            v = 0
            for k in range(480):
                v += (k * 7 + i * 3 + j) % 11
                out.append(f'c_total{{job="j{j}",instance="i{i}"}} {v} {T0 + k * 15}')
    out.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def short(expr):
    return expr if len(expr) <= 80 else f"{expr[:60]}...({len(expr)} bytes)"


def check_normal(qport, qp, name):
    """The querier is alive and a normal query answers in time."""
    if qp.poll() is not None:
        raise RuntimeError(f"strata query exited with status {qp.returncode} after {name}")
    t = time.time()
    ans, _ = get(qport, "sum(up)", {"time": TQ}, timeout=NORMAL_MS / 1000 + 5)
    ms = (time.time() - t) * 1000
    if ans.get("status") != "success" or ms > NORMAL_MS:
        raise RuntimeError(f"normal query after {name}: {ans.get('status')} in {ms:.0f} ms")


def run_querier(qport, qp, pport):
    for expr, params, expect in QUERIES:
        params = params or {"time": TQ}
        name = f"{short(expr)} {'range' if 'step' in params else 'instant'}"

        def one():
            t = time.time()
            s, scode = get(qport, expr, params)
            secs = time.time() - t
            if expect == "prom":
                p, pcode = get(pport, expr, params)
                if (p["status"], p.get("errorType"), pcode) != (s["status"], s.get("errorType"), scode):
                    raise RuntimeError(f"prometheus {pcode} {p['status']} {p.get('errorType')} {p.get('error', '')[:120]}; "
                                       f"strata {scode} {s['status']} {s.get('errorType')} {s.get('error', '')[:120]}")
                if p["status"] == "success":
                    why = compare(p, s)
                    if why:
                        raise RuntimeError(why[:300])
            elif expect[0] == "same":
                p, _ = get(pport, expect[1], params)
                why = compare(p, s)
                if why:
                    raise RuntimeError(f"vs prometheus {expect[1]}: {why[:300]}")
            else:
                if s["status"] != "error" or s.get("errorType") != expect[1] or scode != 422:
                    raise RuntimeError(f"want {expect[1]} (422; {expect[2]}), strata {scode} {s['status']} "
                                       f"{s.get('errorType')} {s.get('error', '')[:120]}")
            check_normal(qport, qp, name)
            rss = peak_rss_mb(qp.pid)
            if rss > RSS_BOUND_MB:
                raise RuntimeError(f"querier peak RSS {rss} MB > {RSS_BOUND_MB} MB")
            print(f"# {name}: strata {s['status']} {s.get('errorType', '')} in {secs:.2f}s, peak RSS {rss} MB")

        harness.check(f"query:{name}", one)


def run_concurrent(qport, qp):
    """A normal query answers in time while the longest chain is being evaluated."""
    done = {}

    def long_one():
        done["ans"] = get(qport, chain("up", "+", 20000), {"time": TQ})

    th = threading.Thread(target=long_one)
    th.start()
    worst = 0
    time.sleep(0.2)
    while th.is_alive():
        t = time.time()
        ans, _ = get(qport, "sum(up)", {"time": TQ}, timeout=30)
        worst = max(worst, (time.time() - t) * 1000)
        if ans.get("status") != "success":
            raise RuntimeError(f"normal query during the 20,000-term chain: {ans}")
        time.sleep(0.1)
    th.join()
    if done["ans"][0].get("status") != "success":
        raise RuntimeError(f"the 20,000-term chain: {done['ans'][0].get('error')}")
    if worst > NORMAL_MS:
        raise RuntimeError(f"a normal query took {worst:.0f} ms during the chain")
    print(f"# normal queries during the 20,000-term chain: slowest {worst:.0f} ms")


def run_tools(blocks):
    """The same limits in `strata tools query`: hostile queries fail with the error, within the bound."""
    for expr, params, expect in QUERIES:
        if expect == "prom" or expect[0] != "error":
            continue
        params = params or {"time": TQ}
        name = f"{short(expr)} {'range' if 'step' in params else 'instant'}"

        def one():
            args = [STRATA, "tools", "query", f"--data-dir={blocks}", f"--query.max-samples={MAX_SAMPLES}",
                    f"--query.max-memory={MAX_MEMORY}"]
            if "step" in params:
                args += [f"--start={params['start']}", f"--end={params['end']}", f"--step={params['step']}"]
            else:
                args += [f"--time={params['time']}"]
            p = subprocess.run(args + ["--", expr], capture_output=True, text=True, timeout=120)
            if p.returncode != 1 or f": {expect[1]}: " not in p.stderr:
                raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-200:]}")
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
            if rss > RSS_BOUND_MB:
                raise RuntimeError(f"peak RSS {rss} MB > {RSS_BOUND_MB} MB")

        harness.check(f"tools:{name}", one)
    # a 20,000-term chain answers
    def chain_ok():
        p = subprocess.run([STRATA, "tools", "query", f"--data-dir={blocks}", f"--time={TQ}", "--",
                            f"count({chain('up', '+', 20000)})"], capture_output=True, text=True, timeout=120)
        if p.returncode != 0 or '"30"' not in p.stdout:
            raise RuntimeError(f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-200:]}")

    harness.check("tools:20000-term chain", chain_ok)


def main():
    tmp = tempfile.mkdtemp(prefix="querylimits.")
    procs = []
    try:
        om = os.path.join(tmp, "in.om")
        gen(om)
        blocks = os.path.join(tmp, "blocks")
        os.mkdir(blocks)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, blocks], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"promtool: {r.stderr.strip()[-300:]}")
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(blocks, pdata)
        prom, pport = start_prometheus(tmp, pdata, args=(f"--query.max-samples={MAX_SAMPLES}", "--query.timeout=2m"))
        procs.append(prom)
        cfg = f"type: FILESYSTEM\nconfig: {{directory: {os.path.join(tmp, 'fs')}}}"
        r = subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                            '--label=cluster="eu1"'],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"upload-blocks: {r.stderr.strip()[-300:]}")
        sg, sh, qg, qh = free_port(), free_port(), free_port(), free_port()
        st = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "sdata"),
                               f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s"],
                              stdout=open(os.path.join(tmp, "store.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(st)
        wait_ready(sh, st, "strata store")
        qp = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                               f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                               f"--query.max-samples={MAX_SAMPLES}", f"--query.max-memory={MAX_MEMORY}",
                               "--query.timeout=2m", "--query.replica-label=cluster"],
                              stdout=open(os.path.join(tmp, "query.log"), "w"),
                              stderr=subprocess.STDOUT)
        procs.append(qp)
        wait_until(lambda: prom_query(qh, "count(up)", {"time": TQ})["data"]["result"], qp, "strata query over the store")
        run_querier(qh, qp, pport)
        harness.check("concurrent", lambda: run_concurrent(qh, qp))
        harness.result("rss", peak_rss_mb(qp.pid) <= RSS_BOUND_MB, f"querier peak RSS {peak_rss_mb(qp.pid)} MB")
        print(f"# querier peak RSS over the whole test: {peak_rss_mb(qp.pid)} MB (bound {RSS_BOUND_MB} MB)")
        run_tools(blocks)
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
