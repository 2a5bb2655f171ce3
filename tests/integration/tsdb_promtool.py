#!/usr/bin/python3
"""Differential tests of Strata's TSDB blocks against Debian's promtool/prometheus 2.42.

Prometheus -> Strata: blocks from `promtool tsdb create-blocks-from openmetrics` dump identically
with `strata tools block dump` and `promtool tsdb dump`. Strata -> Prometheus: blocks from
`strata tools block write` (same input) dump identically with promtool, pass `tsdb analyze`, are
listed by `tsdb list`, and a real Prometheus over them answers queries with the exact samples.
Overlapping blocks dump merged like promtool's DB querier; tombstones written by Prometheus' admin
API (delete_series) are applied by Strata's reader. Byte identity: chunk files AND index files are identical for the same input. (Index identity holds
because both writers emit the "" symbol first, the all-postings list first, the legacy label indices
and offset tables, and the same padding; meta.json differs only in the ULID.)
"""
import json, os, random, shutil, subprocess, sys, tempfile, time, urllib.parse, urllib.request

from lib_harness import Harness, free_port

STRATA = os.environ.get("STRATA_BIN", "build/strata")
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
harness = Harness("tsdb_promtool")
result = harness.result


def gen(path, seed=7, nser=1000, n=300, step=30):
    """Counters with resets, gauges (specials incl. NaN, -0, large/small), classic histograms,
    unicode and escaped label values; some series with jittered timestamps."""
    rnd = random.Random(seed)
    start = 1700000000
    out = ["# TYPE http_requests counter"]
    for s in range(nser):
        v = 0
        lab = f'job="{["api", "web", "db"][s % 3]}",instance="host-{s}",uni="välue-{s % 7} \\"q\\" ∑ 日本"'
        for i in range(n):
            if rnd.random() < 0.01:
                v = 0
            v += rnd.randint(0, 100)
            t = start + i * step + (rnd.randint(0, 3) if s % 5 == 0 else 0)
            out.append(f"http_requests_total{{{lab}}} {v} {t}")
    out.append("# TYPE temp gauge")
    for s in range(nser // 2):
        for i in range(n):
            val = rnd.choice([rnd.uniform(-1e6, 1e6), 1234567.0, 123456.0, 1e6, 1e-4, 1.5e-5, -0.0,
                              float("nan"), rnd.random() * 1e-7, 0.1 * i, 1e21 * rnd.random(), 42.0])
            out.append(f'temp{{room="r{s}"}} {val!r} {start + i * step}')
    out.append("# TYPE lat histogram")
    for s in range(nser // 5):
        for i in range(n):
            t = start + i * step
            c = 0
            for le in ["0.1", "0.5", "1.0", "+Inf"]:
                c += i
                out.append(f'lat_bucket{{svc="s{s}",le="{le}"}} {c} {t}')
            out.append(f'lat_sum{{svc="s{s}"}} {i * 0.37!r} {t}')
            out.append(f'lat_count{{svc="s{s}"}} {c} {t}')
    out.append("# EOF")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def promtool_dump(d, work):
    # promtool dump opens the directory as a DB (needs a wal/ dir); use a scratch copy.
    c = os.path.join(work, "dumpcopy")
    shutil.rmtree(c, ignore_errors=True)
    shutil.copytree(d, c)
    os.makedirs(os.path.join(c, "wal"), exist_ok=True)
    r = run([PROMTOOL, "tsdb", "dump", c])
    shutil.rmtree(c, ignore_errors=True)
    return r.returncode, sorted(r.stdout.splitlines()), r.stderr


def strata_dump(d, *extra):
    r = run([STRATA, "tools", "block", "dump", *extra, d])
    return r.returncode, sorted(r.stdout.splitlines()), r.stderr


def blocks(d):
    out = {}
    for b in sorted(os.listdir(d)):
        mp = os.path.join(d, b, "meta.json")
        if os.path.exists(mp):
            out[json.load(open(mp))["minTime"]] = os.path.join(d, b)
    return out


def wait_ready(base, secs=60):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200:
                return True
        except Exception:
            time.sleep(0.3)
    return False


def overlapping_blocks(work):
    """Two promtool blocks over the same time range (same series, some identical samples): both
    dumps merge the series and take each timestamp once, in the same order."""
    d = os.path.join(work, "overlap")
    ins = []
    for name, rng, extra in (("a", range(0, 200), "only_a"), ("b", range(100, 300), "only_b")):
        lines = []
        for i in rng:
            lines.append(f'm{{s="x"}} {i} {1700000000 + i * 15}')
            lines.append(f'm{{s="{extra}"}} {i * 3} {1700000000 + i * 15 + 7}')
        lines.sort(key=lambda l: (l.split(" ")[0], int(l.split(" ")[2])))
        path = os.path.join(work, f"ov{name}.om")
        open(path, "w").write("# TYPE m gauge\n" + "\n".join(lines) + "\n# EOF\n")
        ins.append(path)
    for path in ins:
        r = run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", path, d])
        if r.returncode:
            result("overlapping_blocks_dump_merged", False, "promtool: " + r.stderr[-300:])
            return
    c = os.path.join(work, "ovcopy")
    shutil.copytree(d, c)
    os.makedirs(os.path.join(c, "wal"))
    r1 = run([PROMTOOL, "tsdb", "dump", c])
    r2 = run([STRATA, "tools", "block", "dump", d])
    xs = [l for l in r2.stdout.splitlines() if 's="x"' in l]
    result("overlapping_blocks_dump_merged", r1.returncode == 0 and r2.returncode == 0 and len(blocks(d)) == 2
           and r1.stdout == r2.stdout and len(xs) == 300,
           f"rc {r1.returncode}/{r2.returncode} lines {len(r1.stdout.splitlines())}/{len(r2.stdout.splitlines())} "
           f"x samples {len(xs)} {r2.stderr[-200:]}")


def tombstones_from_prometheus(work, pdir):
    """Prometheus' admin API writes tombstones into persisted blocks; both dumps then agree."""
    data = os.path.join(work, "tombdata")
    shutil.copytree(pdir, data)
    port = free_port()
    cfg = os.path.join(work, "prometheus-tomb.yml")
    open(cfg, "w").write("global:\n  scrape_interval: 1h\n")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
                             "--web.enable-admin-api"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    why = ""
    try:
        base = f"http://127.0.0.1:{port}"
        if not wait_ready(base):
            why = "prometheus not ready"
        for q in ({"match[]": 'http_requests_total{job="api"}', "start": "1700003000", "end": "1700005000"},
                  {"match[]": 'temp{room="r3"}'}):
            if why:
                break
            req = urllib.request.Request(base + "/api/v1/admin/tsdb/delete_series?" + urllib.parse.urlencode(q),
                                         method="POST")
            st = urllib.request.urlopen(req, timeout=60).status
            if st != 204:
                why = f"delete_series: HTTP {st}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    tomb = [b for b in blocks(data).values() if os.path.getsize(os.path.join(b, "tombstones")) > 9]
    if not why and not tomb:
        why = "no block has tombstones after delete_series"
    rc1, pd, e1 = promtool_dump(data, work)
    rc2, sd, e2 = strata_dump(data)
    gone = [l for l in sd if l.startswith('{__name__="temp", room="r3"}')]
    result("tombstones_from_prometheus_applied", not why and rc1 == 0 and rc2 == 0 and pd == sd and not gone,
           why or f"rc {rc1}/{rc2} lines {len(pd)}/{len(sd)} deleted series lines {len(gone)} {e1[-200:]} {e2[-200:]}"
           + next((f" first diff {a!r} vs {b!r}" for a, b in zip(pd, sd) if a != b), ""))


def main():
    work = tempfile.mkdtemp(prefix="strata-tsdb-")
    try:
        inp = os.path.join(work, "in.om")
        gen(inp)
        pdir, sdir = os.path.join(work, "prom"), os.path.join(work, "strata")
        r = run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", inp, pdir])
        if r.returncode:
            result("setup", False, "promtool create-blocks-from failed: " + r.stderr[-300:])
            return
        r = run([STRATA, "tools", "block", "write", "--quiet", inp, sdir])
        result("strata_write", r.returncode == 0, r.stderr[-300:])

        rc1, pd, e1 = promtool_dump(pdir, work)
        rc2, sd, e2 = strata_dump(pdir)
        result("prom_blocks_dump_identical", rc1 == 0 and rc2 == 0 and pd == sd and len(pd) > 100000,
               f"rc {rc1}/{rc2} lines {len(pd)}/{len(sd)} {e1[-200:]} {e2[-200:]} first diff: "
               + next((f"{a!r} vs {b!r}" for a, b in zip(pd, sd) if a != b), "length"))

        rc3, pd2, e3 = promtool_dump(sdir, work)
        result("strata_blocks_promtool_dump_identical", rc3 == 0 and pd2 == pd,
               f"rc {rc3} lines {len(pd2)}/{len(pd)} {e3[-200:]}")
        rc4, sd2, e4 = strata_dump(sdir)
        result("strata_blocks_strata_dump_identical", rc4 == 0 and sd2 == pd, f"rc {rc4} {e4[-200:]}")

        # --match / --min-time / --max-time agree with promtool
        sel = ['--match={__name__="http_requests_total",job=~"api|db",instance!="host-3"}',
               "--min-time=1700003000000", "--max-time=1700006000000"]
        c = os.path.join(work, "mcopy")
        shutil.copytree(pdir, c)
        os.makedirs(os.path.join(c, "wal"))
        r1 = run([PROMTOOL, "tsdb", "dump", *sel, c])
        rc5, sd5, e5 = strata_dump(pdir, *sel)
        result("dump_match_and_time_range", r1.returncode == 0 and rc5 == 0 and sorted(r1.stdout.splitlines()) == sd5
               and len(sd5) > 1000, f"{len(r1.stdout.splitlines())}/{len(sd5)} {e5[-200:]}")

        overlapping_blocks(work)
        tombstones_from_prometheus(work, pdir)

        pb, sb = blocks(pdir), blocks(sdir)
        same = sorted(pb) == sorted(sb) and len(pb) >= 2
        diffs = []
        for mint in pb:
            if mint not in sb:
                continue
            for f in ["chunks/000001", "index"]:
                a = open(os.path.join(pb[mint], f), "rb").read()
                b = open(os.path.join(sb[mint], f), "rb").read()
                if a != b:
                    diffs.append(f"{mint}/{f}")
        result("byte_identical_chunks_and_index", same and not diffs, f"blocks {sorted(pb)} vs {sorted(sb)}; differ: {diffs}")

        for mint in pb:
            pm, sm = json.load(open(pb[mint] + "/meta.json")), json.load(open(sb[mint] + "/meta.json"))
            for m in (pm, sm):
                m.pop("ulid")
                m["compaction"].pop("sources")
            if pm != sm:
                result("meta_equivalent", False, f"{pm} vs {sm}")
                break
        else:
            result("meta_equivalent", True)

        r = run([PROMTOOL, "tsdb", "list", sdir])
        ok = r.returncode == 0 and all(os.path.basename(b) in r.stdout for b in sb.values())
        result("promtool_list", ok, r.stdout[-300:] + r.stderr[-300:])
        c = os.path.join(work, "acopy")
        shutil.copytree(sdir, c)
        os.makedirs(os.path.join(c, "wal"))
        r = run([PROMTOOL, "tsdb", "analyze", c])
        result("promtool_analyze", r.returncode == 0 and "Label pairs most involved in churning" in r.stdout,
               r.stderr[-300:])

        # A real Prometheus over Strata-written blocks.
        data = os.path.join(work, "promdata")
        shutil.copytree(sdir, data)
        port = free_port()
        cfg = os.path.join(work, "prometheus.yml")
        open(cfg, "w").write("global:\n  scrape_interval: 1h\n")
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200:
                        break
                except Exception:
                    time.sleep(0.3)
            want = {}
            for line in open(inp):
                if line.startswith('http_requests_total{job="api",instance="host-3",') or \
                        line.startswith('temp{room="r7"}'):
                    head, v, t = line.rsplit(" ", 2)
                    want.setdefault(head.split("{")[0], []).append((int(float(t) * 1000), v))
            ok, why = True, ""
            for metric, sel in [("http_requests_total", 'http_requests_total{instance="host-3"}'),
                                ("temp", 'temp{room="r7"}')]:
                q = urllib.parse.urlencode({"query": sel + "[4h]", "time": "1700009200"})
                body = json.load(urllib.request.urlopen(base + "/api/v1/query?" + q, timeout=30))
                res = body["data"]["result"]
                if len(res) != 1:
                    ok, why = False, f"{sel}: {len(res)} series"
                    break
                got = [(int(round(float(t) * 1000)), v) for t, v in res[0]["values"]]
                exp = [(t, v) for t, v in want[metric] if t > 1700009200000 - 4 * 3600 * 1000]
                # the API prints values with Go 'f'/'e' formatting; compare as floats (NaN == NaN)
                def same(a, b):
                    fa, fb = float(a), float(b)
                    return (fa != fa and fb != fb) or fa == fb
                if len(got) != len(exp) or any(g[0] != e[0] or not same(g[1], e[1]) for g, e in zip(got, exp)):
                    ok, why = False, f"{sel}: got {len(got)} samples, want {len(exp)}; first {got[:2]} vs {exp[:2]}"
                    break
            result("prometheus_serves_strata_blocks", ok, why)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
sys.exit(1 if harness.failed else 0)
