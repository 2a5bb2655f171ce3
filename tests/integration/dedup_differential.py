#!/usr/bin/python3
"""Deduplication of HA replicas (issue 22) against a real Prometheus 2.42 over the gap-free data.

Data (8h, promtool-built 2h blocks, T0 800s past a block boundary, so the data spans five windows):
  identical  replicas with identical timestamps (receiver replication, the same blocks uploaded twice):
             lib_promql_queries.gen()'s families (15s counters with resets, gauges with a gap, histograms,
             churning series) plus dd_gauge (60s, 5m), dd_counter_total (15s, 60s, 5m; resets exactly at
             both hand-overs and elsewhere) and dd_special (15s, 60s; NaN, +Inf, -Inf, -0, -0 exactly at
             the hand-overs). Replica a misses the window [B1, B2), replica b the next one [B2, B3).
  offset     two Prometheus scraping the same targets: replica b 7s after a, each with a long gap of
             its own and single missed scrapes: off_counter_total (15s, 60s, 5m; smooth, no resets),
             off_resets_total (15s; resets), off_gauge (15s, 60s).
Prometheus serves the gap-free data (the offset families once per replica, label src="a"|"b"); replica a
and b are uploaded to their own FILESYSTEM buckets (external label replica="a"|"b"), each served by a
`strata store`; three `strata query --query.replica-label=replica` over both, one per
--deduplication.func (penalty: the default, chain, penalty-thanos).

  identical: every query of lib_promql_queries.QUERIES and of the dd_* set, instant at and after the
    hand-overs and as range queries, answers as Prometheus (lib_promql_queries.compare: same series,
    timestamps, values within 4 ulp; raw selections byte for byte, -0 included) with penalty and with
    chain; penalty-thanos is shown to differ (counted, printed).
  offset: the raw merged series of penalty never doubles the sample rate (at most one sample more than a
    gap-free replica in any window of five intervals; chain does double, so the check can fail), and
    rate/increase over 5m and more stay within 1% of each gap-free replica at every 10s step, hand-overs
    included; resets() counts as a replica does. The errors of penalty and penalty-thanos are printed
    side by side (penalty-thanos must be worse). Printed for information only: the 5m series under
    [30m], six samples per window, where any hand-over (a short interval, or a hole when the other
    replica's sample is skipped) moves Prometheus's extrapolation threshold (1.1 average intervals) past
    the window edges for some phase offsets (b 53s after a: ~10%; penalty-thanos ~40%).
Prints "PASS dedupdiff:<check>" / "FAIL ...: why". DEDUP_DIFF_HOURS (default 8), DEDUP_DIFF_OFFSET (default 7 s).
"""
import json, math, os, random, shutil, subprocess, sys, tempfile, time

from lib_harness import Harness, wait_ready, wait_until
from lib_promql_queries import QUERIES, T0, compare, free_port, gen, prom_query, start_prometheus, stop

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
HOURS = int(os.environ.get("DEDUP_DIFF_HOURS", "8"))
END = T0 + HOURS * 3600
B1 = T0 + 6400           # first block boundary after T0: replica a misses [B1, B2)
B2, B3 = B1 + 7200, B1 + 14400  # replica b misses [B2, B3)
OFF = int(os.environ.get("DEDUP_DIFF_OFFSET", "7"))  # offset replica b scrapes this many seconds after a
MODES = ("penalty", "chain", "penalty-thanos")
harness = Harness("dedupdiff")


def fmt(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def identical_families(rnd):
    """dd_* families: {series: [(t, value)]} and their types."""
    fams = {}
    for iv in (60, 300):
        s, v = [], 20.0
        for t in range(T0, END, iv):
            v += rnd.uniform(-1, 1)
            s.append((t, round(v, 3)))
        fams[("dd_gauge", f'iv="{iv}s"')] = s
    for iv in (15, 60, 300):
        s, v = [], 0.0
        first_after = {min(t for t in range(T0, END, iv) if t >= b) for b in (B1, B2)}
        extra = {T0 + 1000 // iv * iv, min(t for t in range(T0, END, iv) if t >= B1) + 3 * iv}
        for t in range(T0, END, iv):
            v = float(rnd.randint(0, 5)) if t in first_after | extra else v + rnd.randint(0, 20)
            s.append((t, v))
        fams[("dd_counter_total", f'iv="{iv}s"')] = s
    for iv in (15, 60):
        s = []
        ts = list(range(T0, END, iv))
        edges = {min(t for t in ts if t >= b) for b in (B1, B2)}
        before = {max(t for t in ts if t < b) for b in (B1, B2)}
        for i, t in enumerate(ts):
            v = round(rnd.uniform(-3, 3), 2)
            if t in edges or i % 17 == 0:
                v = -0.0
            elif t in before or i % 11 == 0:
                v = math.inf
            elif i % 13 == 0:
                v = -math.inf
            elif i % 7 == 0:
                v = math.nan
            s.append((t, v))
        fams[("dd_special", f'iv="{iv}s"')] = s
    return fams


def smooth_counter(t):
    """10/s with a +-10% swing over 6h: gap-free replicas 7s apart agree within ~0.3% even for the 5m
    series under rate[2h] (a faster swing makes them disagree by more than 1% themselves)."""
    return 10 * (t - T0) + 0.1 * 10 * 21600 / (2 * math.pi) * (1 - math.cos(2 * math.pi * (t - T0) / 21600))


OFF_GAPS = {"a": [(B1 + 1200, B1 + 3000)], "b": [(B2 + 600, B2 + 2400)]}  # [from, to): not scraped
OFF_MISSES = {"a": (T0 + 2000, B2 + 3000), "b": (B1 + 300, T0 + 4000)}     # the first scrape at or after: missed
RESETS = (B1 + 1210, B2 + 5000, T0 + 3000)  # the first just after replica a's long gap starts


def scrape_times(rep, iv, gaps):
    ts = list(range(T0 + (OFF if rep == "b" else 0), END, iv))
    if not gaps:
        return ts
    miss = {min(t for t in ts if t >= m) for m in OFF_MISSES[rep]}
    return [t for t in ts if t not in miss and not any(a <= t < b for a, b in OFF_GAPS[rep])]


def offset_families(rep, gaps):
    """off_* families as scraped by replica rep (b 7s after a), with or without its gaps."""
    fams = {}
    for iv in (15, 60, 300):
        fams[("off_counter_total", f'iv="{iv}s"')] = [(t, round(smooth_counter(t), 3)) for t in scrape_times(rep, iv, gaps)]
    s = []
    for t in scrape_times(rep, 15, gaps):
        last = max([r for r in RESETS if r <= t], default=T0)
        s.append((t, round(smooth_counter(t) - smooth_counter(last), 3)))
    fams[("off_resets_total", 'iv="15s"')] = s
    for iv in (15, 60):
        fams[("off_gauge", f'iv="{iv}s"')] = [(t, round(50 + 20 * math.sin((t - T0) / 1000), 3))
                                            for t in scrape_times(rep, iv, gaps)]
    return fams


def write_om(path, base_lines, fams, keep):
    """OpenMetrics: gen()'s lines (without # EOF), then the families; a sample of metric m at t is kept when
    keep(m, t)."""
    out = [ln for ln in base_lines if ln.startswith("#") or keep(ln.split("{", 1)[0], float(ln.rsplit(" ", 1)[1]))]
    by_name = {}
    for (name, ls), samples in fams.items():
        by_name.setdefault(name, []).append((ls, samples))
    for name, series in by_name.items():
        base = name[:-len("_total")] if name.endswith("_total") else name
        out.append(f"# TYPE {base} {'counter' if name.endswith('_total') else 'gauge'}")
        for ls, samples in series:
            out.extend(f"{name}{{{ls}}} {fmt(v)} {t}" for t, v in samples if keep(name, t))
    out.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def promtool_blocks(tmp, name, om):
    d = os.path.join(tmp, "blocks-" + name)
    os.mkdir(d)
    r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, d], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"promtool ({name}): {r.stderr.strip()[-300:]}")
    return d


def build_data(tmp):
    """Blocks for Prometheus (gap-free) and for replicas a and b."""
    base = os.path.join(tmp, "base.om")
    gen(base, n=(END - T0) // 15)
    with open(base) as f:
        base_lines = [ln for ln in f.read().splitlines() if ln and ln != "# EOF"]
    os.unlink(base)
    ident = identical_families(random.Random(22))
    ref = dict(ident)
    for rep in ("a", "b"):
        for (name, ls), s in offset_families(rep, False).items():
            ref[(name, ls + f',src="{rep}"')] = s
    # the identical data of replica a misses [B1, B2), b's [B2, B3); the offset families have their own gaps
    dirs = {}
    for name, fams, keep in (
            ("ref", ref, lambda m, t: True),
            ("a", {**ident, **offset_families("a", True)}, lambda m, t: m.startswith("off_") or not B1 <= t < B2),
            ("b", {**ident, **offset_families("b", True)}, lambda m, t: m.startswith("off_") or not B2 <= t < B3)):
        om = os.path.join(tmp, name + ".om")
        write_om(om, base_lines, fams, keep)
        dirs[name] = promtool_blocks(tmp, name, om)
        os.unlink(om)
    return dirs


def start(tmp, name, argv, procs):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def serve(tmp, dirs, procs):
    """Two strata stores (replicas a, b) and one strata query per mode; {mode: http port}."""
    grpc = []
    for rep in ("a", "b"):
        cfg = f"type: FILESYSTEM\nconfig: {{directory: {os.path.join(tmp, 'bucket-' + rep)}}}"
        r = subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + dirs[rep],
                            f'--label=replica="{rep}"'], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"upload-blocks: {r.stderr.strip()[-300:]}")
        g, h = free_port(), free_port()
        p = start(tmp, "store-" + rep, [STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data-" + rep),
                                       f"--grpc-address=127.0.0.1:{g}", f"--http-address=127.0.0.1:{h}",
                                       "--http-grace-period=1s"], procs)
        wait_ready(h, p, "strata store " + rep)
        grpc.append(g)
    ports = {}
    for mode in MODES:
        h, g = free_port(), free_port()
        flag = [] if mode == "penalty" else [f"--deduplication.func={mode}"]  # penalty is the default
        p = start(tmp, "query-" + mode, [STRATA, "query", f"--http-address=127.0.0.1:{h}", f"--grpc-address=127.0.0.1:{g}",
                                        "--http-grace-period=1s", "--grpc-grace-period=1s", "--query.replica-label=replica",
                                        *[f"--endpoint=127.0.0.1:{x}" for x in grpc], *flag], procs)
        wait_until(lambda h=h: len(prom_query(h, "count by (replica) (dd_gauge)", {"time": B1 + 100, "dedup": "false"})
                                   ["data"]["result"]) == 2, p, "strata query " + mode)
        ports[mode] = h
    return ports


# ---- identical timestamps

DD_RAW = ["dd_gauge", "dd_counter_total", "dd_special", "dd_special[10m]", "dd_counter_total[10m]", "dd_gauge[20m]",
          "timestamp(dd_gauge)", "dd_gauge offset 5m", "dd_special == 0"]
DD = DD_RAW + [
    "rate(dd_counter_total[5m])", "rate(dd_counter_total[15m])", "increase(dd_counter_total[1h])",
    "irate(dd_counter_total[5m])", "resets(dd_counter_total[30m])", "changes(dd_gauge[30m])",
    'count_values("v", dd_special)', "count_over_time(dd_special[5m])", "last_over_time(dd_gauge[10m])",
    "avg_over_time(dd_gauge[30m])", "max_over_time(dd_special[5m])", "min_over_time(dd_special[5m])",
    "sum by (iv) (rate(dd_counter_total[10m]))", "deriv(dd_gauge[30m])", "delta(dd_gauge[20m])", "sgn(dd_special)",
    "1 / dd_special", "present_over_time(dd_gauge[5m])", "increase(dd_counter_total[2h])", "sum(dd_counter_total)",
    "quantile_over_time(0.5, dd_special[15m])", "stddev_over_time(dd_gauge[1h])", "rate(http_requests_total[5m])",
    "increase(http_requests_total[10m])", "temperature", "latency_seconds_count"]
HAND = [{"time": B1 + 5}, {"time": B1 + 65}, {"time": B1 + 301}, {"time": B2 + 20}, {"time": B2 + 130}, {"time": B2 + 310}]
SPANS = [{"start": T0 + 600, "end": END - 600, "step": 97}, {"start": B1 - 900, "end": B1 + 900, "step": 15},
         {"start": B2 - 900, "end": B2 + 900, "step": 15}]


def agree(p, s, fail, exact):
    """None when Prometheus's answer p and Strata's s agree, else why."""
    if fail or p["status"] == "error":
        return None if p["status"] == s["status"] == "error" else \
            f"expected both to fail: prometheus={p['status']} strata={s['status']}"
    why = compare(p, s)
    if why is None and exact:
        key = lambda r: json.dumps(r["metric"], sort_keys=True)
        pr = sorted(p["data"]["result"], key=key)
        sr = sorted(s["data"]["result"], key=key)
        if pr != sr:
            bad = [(a, b) for x, y in zip(pr, sr) for a, b in zip(x.get("values") or [x["value"]], y.get("values") or [y["value"]])
                   if a != b]
            why = f"not byte for byte: {bad[:3]}"
    return why


def check_identical(ports, pport):
    cases = [(e, f, p, False) for e, f in QUERIES for p in (HAND[0], HAND[4], SPANS[0])]
    cases += [(e, False, p, e in DD_RAW) for e in DD for p in HAND + SPANS]
    bad = {m: 0 for m in MODES}
    for expr, fail, params, exact in cases:
        p = prom_query(pport, expr, params)
        for mode in MODES:
            s = prom_query(ports[mode], expr, params)
            why = agree(p, s, fail, exact)
            bad[mode] += why is not None
            if mode != "penalty-thanos":
                harness.result(f"identical:{mode}:{expr} {params}", why is None, why)
    print(f"identical timestamps: {len(cases)} query/time cases; differing from Prometheus: "
          f"penalty {bad['penalty']}, chain {bad['chain']}, penalty-thanos {bad['penalty-thanos']}")
    harness.result("identical:penalty-thanos_differs", bad["penalty-thanos"] > 0,
                   "Thanos's penalty agreed everywhere: the data has no hand-over it gets wrong")

    def neg_zero():
        # The first sample after each hand-over is -0 (and every 17th): Prometheus prints "-0", and so must
        # the deduplicating querier (it used to add a zero counter offset, turning -0 into 0); penalty-thanos
        # skips the samples right after a hand-over, so only the one away from them for it.
        for t in (T0 + 17 * 15, B1 + 5, B2 + 10):
            params = {"time": t}
            pr = prom_query(pport, 'dd_special{iv="15s"}', params)["data"]["result"]
            assert pr and pr[0]["value"][1] == "-0", pr
            for mode in MODES[:2] if t > B1 else MODES:
                sr = prom_query(ports[mode], 'dd_special{iv="15s"}', params)["data"]["result"]
                assert sr == pr, (mode, sr, pr)
                sc = prom_query(ports[mode], 'count_values("v", dd_special{iv="15s"})', params)["data"]["result"]
                assert sc and sc[0]["metric"] == {"v": "-0"}, (mode, sc)
    harness.check("identical:negative_zero_bit_for_bit", neg_zero)


# ---- offset timestamps

def raw(port, sel, extra=None):
    """The raw samples of sel over the whole span: [(t, value str)] of its single series."""
    params = {"time": END, **(extra or {})}
    r = prom_query(port, f"{sel}[{END - T0 + 60}s]", params)["data"]["result"]
    assert len(r) == 1, f"{sel}: {len(r)} series"
    return [(float(t), v) for t, v in r[0]["values"]]


def max_in_windows(ts, width):
    """The most samples of ts (sorted) within any window [x, x + width)."""
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


def check_offset_raw(ports, pport):
    for iv, sel in ((15, 'off_gauge{iv="15s"}'), (60, 'off_gauge{iv="60s"}'), (15, 'off_counter_total{iv="15s"}'),
                    (300, 'off_counter_total{iv="300s"}')):
        ref = [t for t, _ in raw(pport, sel[:-1] + ',src="a"}')]
        limit = max_in_windows(ref, 5 * iv) + 1

        def t_rate(sel=sel, iv=iv, limit=limit, ref=ref):
            got = raw(ports["penalty"], sel)
            ts = [t for t, _ in got]
            most = max_in_windows(ts, 5 * iv)
            assert most <= limit, f"{most} samples within {5 * iv}s (a gap-free replica: {limit - 1})"
            assert len(ts) <= len(ref) + 6, f"{len(ts)} samples, a gap-free replica has {len(ref)}"
            gaps = max(b - a for a, b in zip(ts, ts[1:]))
            assert gaps <= 1.1 * iv, f"a hole of {gaps}s in the merged series"
            chain = [t for t, _ in raw(ports["chain"], sel)]
            assert max_in_windows(chain, 5 * iv) > limit, "chain did not double the rate: the check cannot fail"
            print(f"{sel}: merged {len(ts)} samples (replica a gap-free {len(ref)}), at most {most} in {5 * iv}s, "
                  f"shortest interval {min(b - a for a, b in zip(ts, ts[1:])):g}s, longest {gaps:g}s; chain {len(chain)}")
        harness.check(f"offset:penalty_never_doubles_rate:{sel}", t_rate)


def series_values(port, expr, params):
    r = prom_query(port, expr, params)
    assert r["status"] == "success", r
    res = r["data"]["result"]
    assert len(res) == 1, f"{expr}: {len(res)} series"
    return {float(t): float(v) for t, v in res[0]["values"]}


def rel_err(got, refs):
    """The largest relative difference of got from each reference over their common steps, the number of
    points compared and where the largest one is."""
    worst, n, where = 0.0, 0, None
    for ref in refs:
        for t, w in ref.items():
            if t in got and w != 0:
                e = abs(got[t] - w) / abs(w)
                if e > worst:
                    worst, where = e, (t, got[t], w)
                n += 1
    return worst, n, where


def check_offset_rate(ports, pport):
    params = {"start": T0 + 7200, "end": END - 600, "step": 10}
    cases = [("rate", 15, "5m"), ("rate", 15, "10m"), ("increase", 15, "1h"), ("rate", 60, "5m"), ("rate", 60, "10m"),
             ("rate", 60, "20m"), ("increase", 60, "30m"), ("rate", 60, "1h"), ("rate", 300, "2h"), ("increase", 300, "3h")]
    info = [("rate", 300, "30m")]
    print(f"offset replicas (b {OFF}s after a), largest relative error vs each gap-free replica at every 10s step:")
    for fn, iv, rng in cases + info:
        sel = f'off_counter_total{{iv="{iv}s"}}'
        refs = [series_values(pport, f'{fn}({sel[:-1]},src="{r}"}}[{rng}])', params) for r in ("a", "b")]
        err = {m: rel_err(series_values(ports[m], f"{fn}({sel}[{rng}])", params), refs) for m in ("penalty", "penalty-thanos")}
        ab = rel_err(refs[0], refs[1:])
        line = f"  {fn}({sel}[{rng}]): penalty {100 * err['penalty'][0]:.3f}%, penalty-thanos {100 * err['penalty-thanos'][0]:.3f}% " \
               f"({err['penalty'][1]} points; replica a vs b {100 * ab[0]:.3f}%; penalty's worst {err['penalty'][2]})"
        print(line + ("  (information: few samples per window)" if (fn, iv, rng) in info else ""))
        if (fn, iv, rng) in info:
            continue

        def t_close(err=err, line=line):
            assert err["penalty"][1] > 1000, line
            assert err["penalty"][0] <= 0.01, line
        harness.check(f"offset:{fn}_{iv}s_{rng}_within_1pct", t_close)
        if iv == 15:
            harness.result(f"offset:{fn}_{iv}s_{rng}_thanos_worse", err["penalty-thanos"][0] > err["penalty"][0], line)

    def t_resets():
        sel = 'off_resets_total{iv="15s"}'
        for rng in ("1h", "3h"):
            # the replicas see each reset 7s apart: at every step the merged series counts as one of them
            want = [series_values(pport, f'resets({sel[:-1]},src="{r}"}}[{rng}])', params) for r in ("a", "b")]
            got = series_values(ports["penalty"], f"resets({sel}[{rng}])", params)
            diff = [(t, g, want[0].get(t), want[1].get(t)) for t, g in got.items() if g not in (want[0].get(t), want[1].get(t))]
            assert not diff and len(got) > 1000, f"resets[{rng}] differs at {len(diff)} steps: {diff[:4]}"
        inc = series_values(ports["penalty"], f"increase({sel}[1h])", params)
        refs = [series_values(pport, f'increase({sel[:-1]},src="{r}"}}[1h])', params) for r in ("a", "b")]
        lo = {t: min(r[t] for r in refs) for t in refs[0] if all(t in r for r in refs)}
        hi = {t: max(r[t] for r in refs) for t in lo}
        out = [(t, inc[t], lo[t], hi[t]) for t in lo if t in inc and not lo[t] * 0.99 <= inc[t] <= hi[t] * 1.01]
        assert not out, f"increase[1h] outside the replicas' range at {len(out)} steps: {out[:3]}"
    harness.check("offset:counter_resets_kept_and_never_faked", t_resets)


def main():
    tmp = tempfile.mkdtemp(prefix="dedupdiff.")
    procs = []
    try:
        t0 = time.time()
        dirs = build_data(tmp)
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(dirs["ref"], pdata)
        prom, pport = start_prometheus(tmp, pdata)
        procs.append(prom)
        ports = serve(tmp, dirs, procs)
        print(f"setup {time.time() - t0:.1f}s")
        check_identical(ports, pport)
        check_offset_raw(ports, pport)
        check_offset_rate(ports, pport)
        print(f"total {time.time() - t0:.1f}s")
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
