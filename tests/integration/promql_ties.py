#!/usr/bin/python3
"""Differential test of every PromQL result that depends on an ordering rule, over data built to tie.

Gauges in groups of 1, 3, 14 and 60 series (Go's sort switches from insertion sort above 12 elements
and to Tukey's ninther from 50) take values from a small set, so most steps hold long runs of equal
values, the k-th place of topk/bottomk falls inside a run, and NaN, +Inf and -Inf are mixed in; at
some steps every series holds the same value (instances restarted to one base value), at some a few
series are missing. Histogram buckets repeat upper bounds ("1", "1.0", "1e0") with counts whose sum
depends on the order of addition, and one bound is NaN.

promtool turns the data into blocks; `strata tools query` and a real Prometheus 2.42 over a copy answer
a generated query set: topk/bottomk ungrouped, by and without, k from 1 to above the group size;
sort/sort_desc; quantile; count_values (value label new, replacing a label, listed in without);
histogram_quantile. Instant queries at several times are compared in order (sequence of series and
values) where 2.42's order is deterministic, as sets where it is not (histogram_quantile walks a Go
map); range queries compare the whole matrix, series order included.
Prints "PASS ties:<query> <params>" / "FAIL ...".
"""
import json, os, random, shutil, subprocess, sys, tempfile

from lib_harness import stop
from lib_promql_queries import close, prom_query, start_prometheus

STRATA = os.environ.get("STRATA_BIN", "build/strata")
T0 = 1700000000
N = 240  # 15 s apart: one hour
GROUPS = {"a": 60, "b": 14, "c": 3, "d": 1}
VALUES = ["0", "1", "1", "2", "2", "2", "3", "3", "NaN", "+Inf", "-Inf", "-1"]


def gen(path):
    rnd = random.Random(26)
    out = ["# TYPE tie gauge"]
    rows = {}
    for i in range(N):
        same = i % 10 == 0  # every series restarted to one value
        for g, n in GROUPS.items():
            for s in range(n):
                if not same and rnd.random() < 0.05:
                    continue  # missing at this step: the group is smaller here
                v = "5" if same else rnd.choice(VALUES)
                rows.setdefault((g, s), []).append(f"{v} {T0 + i * 15}")
    for (g, s), pts in sorted(rows.items()):
        for p in pts:
            out.append(f'tie{{grp="{g}",inst="{s:02d}"}} {p}')
    out.append("# TYPE hb_bucket gauge")
    bounds = ["0.5", "1", "1.0", "1e0", "2", "NaN", "+Inf"]
    for svc in ("x", "y"):
        for b in bounds:
            for i in range(N):
                base = {"0.5": 1, "1": 2, "1.0": 2, "1e0": 2, "2": 5, "NaN": 3, "+Inf": 9}[b]
                frac = {"1": 0.1, "1.0": 0.2, "1e0": 0.3}.get(b, 0)
                out.append(f'hb_bucket{{svc="{svc}",le="{b}"}} {base + frac + (i % 7) * 0.7} {T0 + i * 15}')
    out.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def queries():
    """(expr, ordered): ordered = 2.42's instant-query order is deterministic and must match."""
    qs = []
    for k in (1, 2, 3, 4, 12, 13, 14, 15, 49, 50, 59, 60, 61, 200):
        for op in ("topk", "bottomk"):
            qs.append((f"{op}({k}, tie)", True))
            qs.append((f"{op} by (grp) ({k}, tie)", True))
            qs.append((f"{op} without (inst) ({k}, tie)", True))
    for op in ("topk", "bottomk"):
        qs.append((f'{op} without (grp) (2, tie{{grp=~"a|b"}})', True))  # one group per instance
        qs.append((f"{op}(scalar(count(tie{{grp=\"c\"}})), tie)", True))  # k changes with the steps
        qs.append((f"{op}(0, tie)", True))
        qs.append((f"{op}(-3, tie)", True))
        qs.append((f"{op}(2.9, tie)", True))
        qs.append((f"{op} by (grp) (3, tie * 2)", True))
    for f in ("sort", "sort_desc"):
        qs.append((f"{f}(tie)", True))
        for g in GROUPS:
            qs.append((f'{f}(tie{{grp="{g}"}})', True))
        qs.append((f"{f}(tie + 1)", True))
    for q in ("0", "0.1", "0.25", "0.5", "0.9", "1"):
        qs.append((f"quantile({q}, tie)", True))
        qs.append((f"quantile by (grp) ({q}, tie)", True))
    qs += [(e, True) for e in ('count_values("v", tie)', 'count_values by (grp) ("v", tie)',
                               'count_values without (inst) ("v", tie)', 'count_values("grp", tie)',
                               'count_values by (grp) ("grp", tie)', 'count_values without (inst) ("inst", tie)',
                               'count_values without (grp) ("inst", tie)', 'count_values("__name__", tie)',
                               'count_values without () ("__name__", tie)')]
    qs += [(e, False) for e in ("histogram_quantile(0.5, hb_bucket)", "histogram_quantile(0.25, hb_bucket)",
                                "histogram_quantile(0.9, hb_bucket)", "histogram_quantile(0.5, sum by (le) (hb_bucket))")]
    qs += [(e, True) for e in ("topk(3, tie) + 0", "sort_desc(topk(5, tie))", "bottomk(2, sort(tie))",
                               'topk by (grp) (1, count_values by (grp) ("v", tie))')]
    qs.append(("topk(2, {__name__=\"tie\"} offset 1m)", True))
    # instant vectors are not sorted by 2.42: every other operator's order must match too
    qs += [(e, True) for e in ("sum by (inst) (tie)", "max without (grp) (tie)", "count by (grp) (tie)",
                               "stddev by (inst) (tie)", "group without (inst) (tie)", "tie > 1", "-tie",
                               "abs(tie)", 'label_replace(tie, "x", "$1", "inst", "(.)(.)")',
                               'tie{grp="c"} or tie{grp=~"a|d"}', 'tie and on(inst) tie{grp="c"}',
                               'tie unless on(inst) tie{grp="b"}', "tie * on(inst) group_left sum by (inst) (tie)",
                               "sum by (inst) (tie) / on(inst) group_right tie", "tie{grp=\"a\"} + tie{grp=\"a\"}",
                               "rate(tie[5m])", "last_over_time(tie[5m])", "timestamp(tie)")]
    return qs


# Range queries whose result 2.42 leaves to chance: the input of topk/bottomk (or of the bucket sort with
# a NaN bound) is an operator's or a function's output, which 2.42 assembles from a Go map in random
# order at every range step.
RANDOM_IN_RANGE = ("topk by (grp) (3, tie * 2)", "bottomk by (grp) (3, tie * 2)", "bottomk(2, sort(tie))",
                   'topk by (grp) (1, count_values by (grp) ("v", tie))',
                   "histogram_quantile(0.5, sum by (le) (hb_bucket))")


def strata_query(data, expr, params):
    args = [STRATA, "tools", "query", f"--data-dir={data}"]
    if "step" in params:
        args += [f"--start={params['start']}", f"--end={params['end']}", f"--step={params['step']}"]
    else:
        args += [f"--time={params['time']}"]
    p = subprocess.run(args + ["--", expr], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return {"status": "error", "error": p.stderr.strip()}
    return {"status": "success", "data": json.loads(p.stdout)}


def points(r):
    return r.get("values") or [r["value"]]


def diff(p, s, ordered):
    """None when Prometheus's answer p and Strata's s agree (in order when ordered), else why."""
    if p["status"] != s["status"]:
        return f"status prometheus={p['status']} {p.get('error', '')} strata={s['status']} {s.get('error', '')}"
    if p["status"] != "success":
        return None
    pd, sd = p["data"], s["data"]
    if pd["resultType"] != sd["resultType"]:
        return f"resultType {pd['resultType']} vs {sd['resultType']}"
    pr, sr = pd["result"], sd["result"]
    if not ordered:
        key = lambda r: json.dumps(r["metric"], sort_keys=True)
        pr, sr = sorted(pr, key=key), sorted(sr, key=key)
    if len(pr) != len(sr):
        return f"{len(pr)} series vs {len(sr)}: prometheus {[r['metric'] for r in pr][:6]} strata {[r['metric'] for r in sr][:6]}"
    for i, (a, b) in enumerate(zip(pr, sr)):
        if a["metric"] != b["metric"]:
            return f"series {i}: prometheus {a['metric']} {points(a)[:1]}, strata {b['metric']} {points(b)[:1]}"
        pa, pb = points(a), points(b)
        if len(pa) != len(pb):
            return f"{a['metric']}: {len(pa)} points vs {len(pb)}"
        for x, y in zip(pa, pb):
            if x[0] != y[0] or not close(x[1], y[1]):
                return f"{a['metric']}: point {x} vs {y}"
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="promqlties.")
    proc = None
    try:
        om = os.path.join(tmp, "in.om")
        gen(om)
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(f"FAIL ties: promtool: {r.stderr.strip()}")
            return 1
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(data, pdata)
        proc, port = start_prometheus(tmp, pdata)
        failed = n = 0
        # instant times: steps with ties everywhere, all-equal steps (i % 10 == 0), between samples
        times = [T0 + 600, T0 + 750, T0 + 1207.5, T0 + 2400, T0 + 3000, T0 + 3585]
        for expr, ordered in queries():
            ranges = [] if expr in RANDOM_IN_RANGE else [{"start": T0 + 300, "end": T0 + 3600, "step": 15}]
            for params in [{"time": t} for t in times] + ranges:
                n += 1
                why = diff(prom_query(port, expr, params), strata_query(data, expr, params), ordered)
                if why:
                    failed += 1
                    print(f"FAIL ties:{expr} {params}: {why}")
                else:
                    print(f"PASS ties:{expr} {params}")
                sys.stdout.flush()
        print(f"{n - failed}/{n} answers agree")
        return 1 if failed else 0
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
