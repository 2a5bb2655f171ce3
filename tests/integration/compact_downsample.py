#!/usr/bin/python3
"""Downsampling end to end: 16 days of data (counters with resets, gauges, a classic histogram, a job's counter
that jumps once an hour; one sample a minute; two more counters with resets every 15 s) in 2h blocks written by `strata tools block write` (byte-identical to promtool's, tsdb_promtool.py;
promtool itself takes minutes for 192 blocks on a loaded machine), uploaded to a FILESYSTEM bucket.

One `strata compact` run: raw blocks compacted (2h -> 8h -> 2d -> 14d), every raw block spanning 40h+
downsampled to 5m and every 5m block spanning 10d+ to 1h, exactly as §4.1's rules say, the 1h block
covering 14 days; `tools block dump` shows the aggregates; `tools bucket inspect` the RESOLUTION column.

Accuracy through `strata query` over `strata store`, step 1h, windows aligned to the resolution
(evaluation at whole hours - 1ms), max_source_resolution 5m and 1h vs 0s: max/min/count/sum_over_time
equal to raw (Strata counts raw samples, Thanos would count aggregate points); avg_over_time equal; a
plain selector within the average iterator's documented bound (the max - min of the window it averages).
rate/increase (counters with resets, histogram buckets, the hourly job, and counters with resets scraped
every 15 s), both at whole hours - 1ms over ranges 1ms short of [1h]/[2h] and at whole hours over [1h]/[2h]
(a dashboard's query; [2h] there reads the 1h blocks at max_source_resolution=1h; its last windows reach
into the raw data after the aggregates): over [2h] within 1%; over [1h] within 1% for the 15 s counters
(0.42% measured) and within 1.75% for the one-a-minute series. [1h] cannot do better with one scrape a
minute: over downsampled data the counter at the range start is the value of
the last raw sample before it (the aggregate point before the range), the raw answer starts at the first
sample inside, and which of the two sides of that one scrape interval a reset (or the job's jump) falls
on is not in the aggregates: up to one scrape's increase of the 58-60 the raw answer sees (1/58 =
1.72%). Thanos's answer (extrapolating from the first aggregate point inside the range) is off by up to
1.9% on the counters, 38% at 1h resolution (49% where raw data follows) and 100% on the job's counter.
Worst errors are printed.

The same rate/increase checks through a querier deduplicating two store gateways over copies of the
bucket that differ only in a replica label (`--query.replica-label`, dedup=true): the replicas' aggregate
chunks are merged into samples there, read as downsampled data all the same (same tolerances).

Auto resolution (--query.auto-downsampling): a 30-day range query at a 1h step reads the 5m blocks
(step / 5 = 12m), at a 6h step the 1h blocks: fewer chunks fetched by the store gateway than raw, and
the last two days (raw data only) are filled from raw blocks with the same answers as raw.

kill -9 of up to three compactors, each soon after it starts downsampling (the same blocks in another bucket): every block
with a meta.json is complete, and a second run leaves the layout (resolutions, ranges, sources) of the
uninterrupted run: nothing downsampled twice.

A corrupt aggregate chunk (unknown sub-encoding, CRC fixed up): the query from that block fails with
the reason, the store gateway keeps serving raw data, nothing crashes.
"""
import json, math, os, random, shutil, subprocess, sys, tempfile, time, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
TEST_BIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build", "tests"))
harness = Harness("compact_downsample")
result, check = harness.result, harness.check

H, D = 3600, 86400


def job_runs(m):
    """A job's counter at minute m: +10 for every run (minute 2 of every hour) since its process last
    restarted (minute 30 of every 37th hour; the counter starts again at 0)."""
    start = (m - 30) // (37 * 60) * (37 * 60) + 30 if m >= 37 * 60 + 30 else -1  # runs after it count
    first = start - start % 60 + 2  # the first run after start
    if first <= start:
        first += 60
    return 10 * ((m - first) // 60 + 1) if m >= first else 0


def make_data(tmp):
    now = int(time.time())
    base = ((now - 16 * D) // (14 * D)) * 14 * D
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE c counter\n# TYPE g gauge\n# TYPE h histogram\n# TYPE c15 counter\n")
        for t in range(base, base + 16 * D, 60):
            m = (t - base) // 60
            for s in range(5):
                f.write(f'c_total{{i="{s}"}} {(m * (s + 1)) % (2000 + 131 * s)} {t}\n')
                f.write(f'g{{i="{s}"}} {int(50 + 40 * math.sin(m / (30 + 7 * s))) + (m * 7919 + s) % 13} {t}\n')
            for le, k in (("0.1", 1), ("1", 2), ("+Inf", 3)):
                f.write(f'h_bucket{{le="{le}"}} {(m * k) % 100000} {t}\n')
            f.write(f'job_runs_total {job_runs(m)} {t}\n')
            # scraped every 15 s (Prometheus's usual setting): the one-scrape bound of [1h] is 1/240
            for q in range(4 * m, 4 * m + 4):
                for s in range(2):
                    f.write(f'c15_total{{i="{s}"}} {(q * (s + 1)) % (4000 + 131 * s)} {base + 15 * q}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run([STRATA, "tools", "block", "write", om, out], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return out, base


def metas(mirror):
    out = []
    for d in os.listdir(mirror):
        p = os.path.join(mirror, d, "meta.json")
        if len(d) == 26 and os.path.exists(p) and not os.path.exists(os.path.join(mirror, d, "deletion-mark.json")):
            out.append(json.load(open(p)))
    return out


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def ask(port, params):
    url = f"http://127.0.0.1:{port}/api/v1/query_range?" + urllib.parse.urlencode(params)
    try:
        r = json.loads(urllib.request.urlopen(url, timeout=60).read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())
    return r


def series(r):
    if r.get("status") != "success":
        raise RuntimeError(json.dumps(r)[:300])
    return {json.dumps({k: v for k, v in s["metric"].items() if k != "__name__"}, sort_keys=True):
            {t: float(v) for t, v in s["values"]} for s in r["data"]["result"]}


def compare(raw, ds, rel_tol, bound=None):
    """Worst relative error of ds vs raw over common points; missing points count as infinite."""
    worst = 0.0
    for k, pts in raw.items():
        got = ds.get(k, {})
        for t, v in pts.items():
            if t not in got:
                return math.inf
            err = abs(got[t] - v)
            if bound is not None:
                if err > bound(k, t) + 1e-9:
                    return math.inf
                err = 0.0
            rel = err / abs(v) if v else err
            worst = max(worst, rel)
    return worst


def main():
    tmp = tempfile.mkdtemp(prefix="strata-downsample.")
    procs = []
    try:
        blocks, base = make_data(tmp)
        bdir = os.path.join(tmp, "bucket")
        os.makedirs(bdir)
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                        '--label=cluster="ds"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        crash_bdir = os.path.join(tmp, "bucket-crash")  # the same blocks for the kill -9 part below
        shutil.copytree(bdir, crash_bdir)
        t0 = time.time()
        log = open(os.path.join(tmp, "compact.log"), "w")
        rc = subprocess.run([STRATA, "compact", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                             "--consistency-delay=0s", "--delete-delay=0s", f"--http-address=127.0.0.1:{free_port()}"],
                            stdout=log, stderr=subprocess.STDOUT).returncode
        log.close()
        print(f"# one compact run: {time.time() - t0:.1f}s")
        result("compact_exit_0", rc == 0, f"exit {rc}")

        # ---- §4.1: what exists ----
        ms = metas(bdir)
        by_res = {r: [m for m in ms if m["thanos"]["downsample"]["resolution"] == r] for r in (0, 300000, 3600000)}
        srcs = lambda m: tuple(sorted(m["compaction"]["sources"]))
        span = lambda m: m["maxTime"] - m["minTime"]
        bad = []
        for frm, to, need in ((0, 300000, 40 * H * 1000), (300000, 3600000, 10 * D * 1000)):
            have = {srcs(m) for m in by_res[to]}
            for m in by_res[frm]:
                if (span(m) >= need) != (srcs(m) in have):
                    bad.append(f"res {frm} block {m['ulid']} span {span(m) / 3600000:.1f}h: downsampled={srcs(m) in have}")
            for m in by_res[to]:
                if srcs(m) not in {srcs(x) for x in by_res[frm]}:
                    bad.append(f"res {to} block {m['ulid']} has no source block")
        one_h = by_res[3600000]
        result("rules_4_1", not bad and len(one_h) == 1 and span(one_h[0]) >= 13 * D * 1000 and by_res[300000],
               "; ".join(bad) or f"{len(one_h)} 1h blocks, {len(by_res[300000])} 5m")
        print("# blocks by resolution: " + ", ".join(f"{r}: {len(v)}" for r, v in by_res.items()))
        insp = subprocess.run([STRATA, "tools", "bucket", "inspect", "--objstore.config=" + cfg], capture_output=True,
                              text=True).stdout
        result("inspect_resolution", "| 5m " in insp and "| 1h " in insp and "RESOLUTION" in insp, insp[:300])
        d5 = os.path.join(bdir, by_res[300000][0]["ulid"])
        dump = subprocess.run([STRATA, "tools", "block", "dump", '--match=c_total{i="1"}', d5], capture_output=True,
                              text=True).stdout
        lines = dump.splitlines()
        result("block_dump_aggregates", lines and lines[0].startswith("# block") and
               all(any(f" {a} " in l for l in lines) for a in ("count", "sum", "min", "max", "counter")), dump[:300])

        # ---- store gateway + querier ----
        gp, hp, qp, qg = free_port(), free_port(), free_port(), free_port()
        slog = open(os.path.join(tmp, "store.log"), "w")
        st = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "sd"),
                               f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}",
                               "--sync-block-duration=1s", "--http-grace-period=1s"], stdout=slog, stderr=subprocess.STDOUT)
        procs.append(st)
        wait_ready(hp, st, "strata store")
        q = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{qp}",
                              f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--query.auto-downsampling"],
                             stdout=slog, stderr=subprocess.STDOUT)
        procs.append(q)
        wait_ready(qp, q, "strata query")
        wait_until(lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{qp}/api/v1/stores", timeout=2).read())
                   ["data"], q, "store discovered")

        # ---- accuracy, aligned windows over the 14 days all resolutions cover ----
        start, end = base + 2 * H - 0.001, base + 14 * D - 0.001
        rng = {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": "3600"}
        raw_cache = {}

        def run(qs, res):
            return series(ask(qp, {**rng, "query": qs, "max_source_resolution": res}))

        # Prometheus 2.42 selects [t - range, t] (both ends): at t = whole hour - 1ms a range of 1h - 1ms
        # holds exactly the hour's raw samples and aggregate points
        W, W2 = "59m59s999ms", "1h59m59s999ms"
        checks = [(f"max_over_time(g[{W}])", 1e-12, None), (f"min_over_time(g[{W}])", 1e-12, None),
                  (f"count_over_time(g[{W}])", 1e-12, None), (f"sum_over_time(g[{W}])", 1e-9, None),
                  (f"avg_over_time(g[{W}])", 1e-9, None)]
        # rate/increase: 1% over [2h]; over [1h] one scrape interval's increase of the 58-60 in the range
        # (see the top: which side of the scrape before the range start a reset or jump falls on is not
        # in the aggregates)
        ONE_SCRAPE = 0.0175
        for f in ("rate", "increase"):
            for m in ("c_total", "h_bucket", "job_runs_total", "c15_total"):
                tol_1h = 0.01 if m == "c15_total" else ONE_SCRAPE
                checks += [(f"{f}({m}[{W2}])", 0.01, None), (f"{f}({m}[{W}])", tol_1h, None),
                           (f"{f}({m}[2h])", 0.01, "whole"), (f"{f}({m}[1h])", tol_1h, "whole")]
        # at whole hours up to 6h past the aggregates' end: the last windows mix aggregate points and the
        # raw samples that fill the gap after them
        whole = {"start": f"{base + 3 * H}", "end": f"{base + 14 * D + 6 * H}", "step": "3600"}
        for res in ("5m", "1h"):
            for qs, tol, at in checks:
                p = whole if at else rng
                key = (qs, at)
                if key not in raw_cache:
                    raw_cache[key] = series(ask(qp, {**p, "query": qs, "max_source_resolution": "0s"}))
                worst = compare(raw_cache[key], series(ask(qp, {**p, "query": qs, "max_source_resolution": res})),
                                tol)
                name = qs + (" at whole hours" if at else "")
                print(f"# {res} {name}: worst relative error {worst:.4g}")
                result(f"accuracy_{res}_{name}", worst <= tol, f"worst relative error {worst} > {tol}")
            # a plain selector reads the window average: off by at most the window's max - min
            win = "4m59s999ms" if res == "5m" else W
            hi, lo = run(f"max_over_time(g[{win}])", "0s"), run(f"min_over_time(g[{win}])", "0s")
            raw_g = raw_cache.setdefault(("g", None), run("g", "0s"))
            worst = compare(raw_g, run("g", res), 0, bound=lambda k, t: hi[k][t] - lo[k][t])
            print(f"# {res} g: within max-min of its {win} window: {worst == 0}")
            result(f"accuracy_{res}_plain_selector_bound", worst == 0, "outside the documented bound")

        # ---- HA replicas: two copies of the bucket differing only in a replica label, deduplicated ----
        # the querier merges the two stores' aggregate chunks into samples (penalty dedup); rate/increase
        # must read them as downsampled data all the same: the single source's tolerances
        rports = []
        for rep in ("a", "b"):
            rdir = os.path.join(tmp, "bucket-" + rep)
            shutil.copytree(bdir, rdir)
            for m in metas(rdir):
                m["thanos"]["labels"]["replica"] = rep
                with open(os.path.join(rdir, m["ulid"], "meta.json"), "w") as f:
                    json.dump(m, f)
            rg, rh = free_port(), free_port()
            procs.append(subprocess.Popen(
                [STRATA, "store", f"--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {rdir}\n",
                 "--data-dir=" + os.path.join(tmp, "sd-" + rep), f"--grpc-address=127.0.0.1:{rg}",
                 f"--http-address=127.0.0.1:{rh}", "--sync-block-duration=1s", "--http-grace-period=1s"],
                stdout=slog, stderr=subprocess.STDOUT))
            wait_ready(rh, procs[-1], "strata store " + rep)
            rports.append(rg)
        dq = free_port()
        procs.append(subprocess.Popen([STRATA, "query", f"--http-address=127.0.0.1:{dq}",
                                       f"--grpc-address=127.0.0.1:{free_port()}", "--http-grace-period=1s",
                                       "--query.replica-label=replica"] +
                                      [f"--endpoint=127.0.0.1:{p}" for p in rports],
                                      stdout=slog, stderr=subprocess.STDOUT))
        wait_ready(dq, procs[-1], "strata query (dedup)")
        reps = lambda: series(ask(dq, {**whole, "query": "count by (replica) (job_runs_total)", "dedup": "false",
                                       "max_source_resolution": "1h"}))
        wait_until(lambda: len(reps()) == 2, procs[-1], "both replica stores discovered", 60)
        result("dedup_two_replicas", len(reps()) == 2, str(list(reps())))
        for res in ("5m", "1h"):
            for qs, tol, at in checks:
                if not qs.startswith(("rate", "increase")):
                    continue
                p = whole if at else rng
                worst = compare(raw_cache[(qs, at)], series(ask(dq, {**p, "query": qs, "dedup": "true",
                                                                     "max_source_resolution": res})), tol)
                name = qs + (" at whole hours" if at else "")
                print(f"# dedup {res} {name}: worst relative error {worst:.4g}")
                result(f"dedup_accuracy_{res}_{name}", worst <= tol, f"worst relative error {worst} > {tol}")

        # ---- auto resolution and gap filling ----
        now = int(time.time())
        chunks = lambda: metric(hp, "thanos_bucket_store_series_data_fetched_total", 'data_type="chunks"')
        fetched, answers = {}, {}
        for name, step, res in (("raw_1h", 3600, "0s"), ("auto_1h", 3600, None), ("raw_6h", 21600, "0s"),
                                ("auto_6h", 21600, None)):
            p = {"query": "max_over_time(g[6h])", "start": now - 30 * D, "end": now, "step": step}
            if res:
                p["max_source_resolution"] = res
            c0 = chunks()
            answers[name] = series(ask(qp, p))
            fetched[name] = chunks() - c0
        print(f"# chunks fetched by the store gateway: {fetched}")
        result("auto_reads_coarser_blocks", fetched["auto_1h"] < fetched["raw_1h"] / 2 and
               fetched["auto_6h"] < fetched["auto_1h"] and fetched["auto_6h"] < fetched["raw_6h"] / 4, str(fetched))
        # the last two days have raw data only: auto answers them from raw, the same as raw
        tail = base + 14 * D + 6 * H
        gaps = [(k, t) for k, pts in answers["raw_1h"].items() for t, v in pts.items()
                if t >= tail and answers["auto_1h"].get(k, {}).get(t) != v]
        n_tail = sum(1 for pts in answers["raw_1h"].values() for t in pts if t >= tail)
        result("auto_fills_gaps_with_raw", n_tail > 0 and not gaps, f"{len(gaps)} of {n_tail} points differ")

        # ---- a corrupt aggregate chunk ----
        seg = os.path.join(d5, "chunks", "000001")
        b = bytearray(open(seg, "rb").read())
        n, k = 0, 0
        shift = 0
        while True:  # the first record's length
            x = b[8 + k]
            n |= (x & 0x7F) << shift
            k += 1
            shift += 7
            if x < 0x80:
                break
        enc_at = 8 + k
        assert b[enc_at] == 0xFF
        b[enc_at + 2] = 7  # first sub-chunk: uvarint length (1 byte here), then its encoding byte
        crc = crc32c(bytes(b[enc_at:enc_at + 1 + n]))
        b[enc_at + 1 + n:enc_at + 5 + n] = crc.to_bytes(4, "big")
        open(seg, "wb").write(bytes(b))
        # the segment's first record is the first series' (c15_total{i="0"}: "1" sorts before "_") first chunk
        r = ask(qp, {**rng, "query": f'max_over_time(c15_total{{i="0"}}[{W}])', "max_source_resolution": "5m",
                     "partial_response": "false"})
        result("corrupt_aggregate_chunk_error", r.get("status") == "error" and "encoding 7" in r.get("error", ""),
               json.dumps(r)[:300])
        r = ask(qp, {**rng, "query": f"max_over_time(g[{W}])", "max_source_resolution": "0s"})
        result("store_serves_raw_after_corrupt_chunk", st.poll() is None and r.get("status") == "success" and
               r["data"]["result"], json.dumps(r)[:200])

        # ---- kill -9 while downsampling: nothing half-written visible, the next run converges ----
        ccfg = f"type: FILESYSTEM\nconfig:\n  directory: {crash_bdir}\n"
        args = [STRATA, "compact", "--objstore.config=" + ccfg, "--data-dir=" + os.path.join(tmp, "data-crash"),
                "--consistency-delay=0s", "--delete-delay=0s", f"--http-address=127.0.0.1:{free_port()}"]
        half, phases = [], []
        for k in range(3):  # each run killed soon after it starts a downsampling, until none is left
            klog = os.path.join(tmp, f"compact-killed{k}.log")
            p = subprocess.Popen(args, stdout=open(klog, "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            wait_until(lambda: "downsampling block" in open(klog).read() or p.poll() is not None, None,
                       "downsampling", 240)
            if p.poll() is not None:
                break
            time.sleep(random.uniform(0, 0.25))
            p.kill()
            p.wait()
            lines = [l for l in open(klog).read().splitlines() if "msg=" in l]
            phases.append(lines[-1].split("msg=")[1].split('"')[1] if lines else "?")
            for d in os.listdir(crash_bdir):
                mp = os.path.join(crash_bdir, d, "meta.json")
                if len(d) == 26 and os.path.exists(mp):
                    for f in json.load(open(mp))["thanos"].get("files", []):
                        fp = os.path.join(crash_bdir, d, f["rel_path"])
                        if f["rel_path"] != "meta.json" and \
                                (not os.path.exists(fp) or os.path.getsize(fp) != f["size_bytes"]):
                            half.append(f"{d}/{f['rel_path']}")
        print(f"# killed after: {phases}")
        result("killed_while_downsampling_no_half_block", phases and not half, f"{phases}; {half[:5]}")
        rc = subprocess.run(args, stdout=open(os.path.join(tmp, "compact-rerun.log"), "w"),
                            stderr=subprocess.STDOUT).returncode
        layout = lambda mm: sorted((m["thanos"]["downsample"]["resolution"], m["minTime"], m["maxTime"], srcs(m))
                                   for m in mm)
        result("killed_while_downsampling_rerun_converges", rc == 0 and layout(metas(crash_bdir)) == layout(ms),
               f"exit {rc}; {layout(metas(crash_bdir))} vs {layout(ms)}")
    finally:
        for p in procs:
            stop(p)
        if harness.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


if __name__ == "__main__":
    main()
