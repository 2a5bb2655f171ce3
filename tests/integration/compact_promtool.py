#!/usr/bin/python3
"""`strata compact` over 12 promtool-made 2h blocks of one stream, in a FILESYSTEM bucket and in the S3
server (scripts/s3-server), with promtool as the format oracle.

Per backend: the blocks are uploaded with `tools bucket upload-blocks --label cluster="eu1"`; a set of
PromQL queries is answered by `strata query` over `strata store`; `strata compact` runs (FILESYSTEM:
with --wait, its /metrics scraped, then SIGTERM; S3: one-shot, exit code 0) with --delete-delay=0s.
Then: the bucket holds exactly the two 8h blocks of the full 8h ranges and the last four 2h blocks
(the newest is never compacted, and the last range is not full), with level 2, the union of their
sources and source "compactor"; `promtool tsdb dump` of the bucket equals the dump of the input
blocks; `promtool tsdb analyze` reads every block; the same queries answer identically through the
store gateway; the compactor's port serves the block viewer (/blocks; global and loaded views =
the live blocks). Finally a Prometheus 2.42 started on the compacted FILESYSTEM blocks answers the
queries as `strata query` does.
"""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
TEST_BIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build", "tests"))
S3_CTL = os.path.join(ROOT, "scripts", "s3-server")
harness = Harness("compact_promtool")
result, check = harness.result, harness.check

H = 3600
NSERIES = 40


def make_blocks(tmp):
    """12 windows of 2h from a 2d-aligned start: counters with resets and gauges, one sample a minute."""
    base = (int(time.time()) // (48 * H) - 2) * 48 * H
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE m counter\n# TYPE g gauge\n")
        for t in range(base, base + 24 * H, 60):
            for s in range(NSERIES):
                v = (t - base) // 60 * (s + 1) % (5000 + 97 * s)  # resets now and then
                f.write(f'm_total{{job="j{s % 3}",inst="i{s:03d}"}} {v} {t}\n')
            for s in range(NSERIES // 2):
                f.write(f'g{{inst="i{s:03d}"}} {((t // 60) * 7919 + s * 31) % 1000 / 10} {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, base


def dump(dirpath):
    """Sorted `promtool tsdb dump` lines of every block under dirpath."""
    wal = os.path.join(dirpath, "wal")
    os.makedirs(wal, exist_ok=True)  # promtool dump opens the WAL too
    r = subprocess.run(["promtool", "tsdb", "dump", dirpath], check=True, capture_output=True, text=True)
    os.rmdir(wal)
    shutil.rmtree(os.path.join(dirpath, "chunks_head"), ignore_errors=True)
    return sorted(l for l in r.stdout.splitlines() if l.startswith("{"))


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total, found = 0.0, False
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def live_blocks(mirror):
    """meta.json of every block in a mirrored bucket that is complete and not marked for deletion."""
    out = {}
    for d in sorted(os.listdir(mirror)):
        p = os.path.join(mirror, d)
        if len(d) == 26 and os.path.exists(os.path.join(p, "meta.json")) and \
                not os.path.exists(os.path.join(p, "deletion-mark.json")):
            out[d] = json.load(open(os.path.join(p, "meta.json")))
    return out


class Proc:
    def __init__(self, tmp, name, args):
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        stop(self.p)
        self.log.close()


def queries(base):
    end = base + 24 * H
    return [
        ("query_range", {"query": "sum by (job) (rate(m_total[5m]))", "start": base, "end": end, "step": 600}),
        ("query_range", {"query": 'm_total{inst="i007"}', "start": base, "end": end, "step": 60}),
        ("query_range", {"query": "max_over_time(g[1h])", "start": base + H, "end": end, "step": 1800}),
        ("query", {"query": "count_over_time(g[3h])", "time": base + 9 * H}),
        ("query", {"query": "sum(increase(m_total[8h]))", "time": base + 16 * H}),
        ("query", {"query": "count(m_total)", "time": base + 23 * H}),
    ]


def ask(port, kind, params, strip=None):
    url = f"http://127.0.0.1:{port}/api/v1/{kind}?" + urllib.parse.urlencode(params)
    r = json.loads(urllib.request.urlopen(url, timeout=30).read())
    if r.get("status") != "success":
        raise RuntimeError(f"{kind} {params['query']}: {r}")
    res = r["data"]["result"]
    for s in res:
        if strip:
            s["metric"].pop(strip, None)
    return sorted(res, key=lambda s: json.dumps(s["metric"], sort_keys=True))


def answers(port, base, strip=None):
    return [ask(port, k, p, strip) for k, p in queries(base)]


def serve(tmp, cfg, tag):
    """strata store + strata query over the bucket; returns (procs, query port)."""
    gp, hp, qp, qg = free_port(), free_port(), free_port(), free_port()
    st = Proc(tmp, f"store-{tag}", [STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "sd-" + tag),
                                    f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}",
                                    "--sync-block-duration=1h", "--http-grace-period=1s"])
    wait_ready(hp, st.p, "strata store")
    q = Proc(tmp, f"query-{tag}", [STRATA, "query", f"--endpoint=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{qp}",
                                   f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s"])
    wait_ready(qp, q.p, "strata query")
    wait_until(lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{qp}/api/v1/stores", timeout=2).read())
               ["data"], q.p, "store discovered")
    return [q, st], qp


def run_backend(tmp, name, cfg, blocks, base, expect_dump):
    subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                    '--label=cluster="eu1"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs, qp = serve(tmp, cfg, name + "-before")
    try:
        before = answers(qp, base)
    finally:
        for p in procs:
            p.stop()
    result(f"{name}:queries_answered", all(len(a) > 0 for a in before), "a query came back empty")

    data = os.path.join(tmp, "data-" + name)
    args = [STRATA, "compact", "--objstore.config=" + cfg, "--data-dir=" + data, "--consistency-delay=0s",
            "--delete-delay=0s", "--http-grace-period=1s"]
    if name == "FILESYSTEM":
        hp = free_port()
        c = Proc(tmp, "compact-" + name, args + ["--wait", "--wait-interval=1h", f"--http-address=127.0.0.1:{hp}"])
        wait_until(lambda: (metric(hp, "thanos_compact_iterations_total") or 0) >= 1, c.p, "first iteration", 60)
        m = {k: metric(hp, k) for k in ("thanos_compact_halted", "thanos_compact_group_compactions_total",
                                         "thanos_compact_blocks_marked_total", "thanos_compact_blocks_cleaned_total",
                                         "thanos_compact_todo_compactions")}
        result(f"{name}:metrics", m == {"thanos_compact_halted": 0, "thanos_compact_group_compactions_total": 2,
                                        "thanos_compact_blocks_marked_total": 8,
                                        "thanos_compact_blocks_cleaned_total": 8, "thanos_compact_todo_compactions": 0},
               str(m))
        check(f"{name}:healthy_ready", lambda: [urllib.request.urlopen(f"http://127.0.0.1:{hp}/-/{e}", timeout=2)
                                                for e in ("healthy", "ready")])
        # The block viewer on the compactor's port (as Thanos's): /blocks, /loaded, the blocks API.
        page = urllib.request.urlopen(f"http://127.0.0.1:{hp}/blocks", timeout=5).read().decode()
        result(f"{name}:block_viewer_page", '"component":"compact"' in page and '"blocks","loaded"' in page,
               page[:200])
        viewer = {v: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{hp}/api/v1/blocks?view={v}&refresh=true",
                                                       timeout=10).read())["data"]["blocks"]
                  for v in ("global", "loaded")}
        c.p.terminate()
        rc = c.p.wait(20)
        c.log.close()
        result(f"{name}:sigterm_exit_0", rc == 0, f"exit {rc}")
    else:
        rc = subprocess.run(args + [f"--http-address=127.0.0.1:{free_port()}"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "compact-" + name + ".log"), "w")).returncode
        result(f"{name}:one_shot_exit_0", rc == 0, f"exit {rc}")

    mirror = os.path.join(tmp, "mirror-" + name)
    subprocess.run([os.path.join(TEST_BIN, "bucket_mirror"), cfg, mirror], check=True)
    live = live_blocks(mirror)
    spans = sorted(((m["minTime"] - base * 1000) // (H * 1000), (m["maxTime"] - m["minTime"] + 60000) // (H * 1000),
                    m["compaction"]["level"]) for m in live.values())
    result(f"{name}:layout", spans == [(0, 8, 2), (8, 8, 2), (16, 2, 1), (18, 2, 1), (20, 2, 1), (22, 2, 1)], str(spans))
    in_ulids = sorted(d for d in os.listdir(blocks) if len(d) == 26)
    compacted = [m for m in live.values() if m["compaction"]["level"] == 2]
    srcs = sorted(s for m in compacted for s in m["compaction"]["sources"])
    result(f"{name}:sources", srcs == in_ulids[:8] and all(m["thanos"]["source"] == "compactor" and
                                                           m["thanos"]["labels"] == {"cluster": "eu1"} and
                                                           m["thanos"].get("index_stats") for m in compacted),
           json.dumps(compacted[0]["thanos"]) if compacted else "no compacted block")
    if name == "FILESYSTEM":
        ids = {v: sorted(b["ulid"] for b in bl) for v, bl in viewer.items()}
        result(f"{name}:block_viewer_global_loaded", ids["global"] == ids["loaded"] == sorted(live), str(ids))
    result(f"{name}:nothing_marked_left", len(os.listdir(mirror)) == len(live),
           f"{len(os.listdir(mirror))} entries, {len(live)} live blocks")
    got = dump(mirror)
    result(f"{name}:promtool_dump_equal", got == expect_dump, f"{len(got)} vs {len(expect_dump)} lines")
    bad = []
    for u in live:
        r = subprocess.run(["promtool", "tsdb", "analyze", mirror, u], capture_output=True, text=True)
        if r.returncode != 0 or "Series:" not in r.stdout:
            bad.append(f"{u}: {r.stderr[-200:]}")
    result(f"{name}:promtool_analyze", not bad, "; ".join(bad))

    procs, qp = serve(tmp, cfg, name + "-after")
    try:
        after = answers(qp, base)
    finally:
        for p in procs:
            p.stop()
    diff = [queries(base)[i][1]["query"] for i in range(len(before)) if before[i] != after[i]]
    result(f"{name}:queries_equal_after", not diff, f"differ: {diff}")
    return mirror, after


def prometheus_check(tmp, mirror, base, strata_answers):
    """Prometheus 2.42 started on the compacted blocks answers like strata query (cluster label aside)."""
    pdir = os.path.join(tmp, "prom")
    os.makedirs(pdir)
    for u in live_blocks(mirror):
        shutil.copytree(os.path.join(mirror, u), os.path.join(pdir, u))
    cfgf = os.path.join(tmp, "prom.yml")
    open(cfgf, "w").write("global:\n  scrape_interval: 1h\n")
    port = free_port()
    p = Proc(tmp, "prometheus", ["prometheus", "--config.file=" + cfgf, "--storage.tsdb.path=" + pdir,
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"])
    try:
        wait_ready(port, p.p, "prometheus", 60)
        theirs = answers(port, base)
        ours = [[{**s, "metric": {k: v for k, v in s["metric"].items() if k != "cluster"}} for s in a]
                for a in strata_answers]
        ours = [sorted(a, key=lambda s: json.dumps(s["metric"], sort_keys=True)) for a in ours]
        diff = [queries(base)[i][1]["query"] for i in range(len(ours)) if ours[i] != theirs[i]]
        result("prometheus_serves_compacted_blocks", not diff, f"differ: {diff}")
    finally:
        p.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="strata-compact.")
    s3_env = None
    try:
        blocks, base = make_blocks(tmp)
        expect = dump(blocks)
        assert len([d for d in os.listdir(blocks) if len(d) == 26]) == 12
        fsb = os.path.join(tmp, "fs")
        os.makedirs(fsb)
        mirror, fs_answers = run_backend(tmp, "FILESYSTEM", f"type: FILESYSTEM\nconfig:\n  directory: {fsb}\n", blocks,
                                         base, expect)
        prometheus_check(tmp, mirror, base, fs_answers)

        env = dict(os.environ, S3_PORT=str(free_port()), S3_DATA_DIR=os.path.join(tmp, "s3"))
        r = subprocess.run([S3_CTL, "start"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            result("S3:start", False, r.stderr[-300:])
            return
        s3_env = env
        kv = dict(l.replace("export ", "").split("=", 1) for l in r.stdout.split("\n") if l.startswith("export "))
        kv = {k: v.strip("'\"") for k, v in kv.items()}
        s3cfg = (f"type: S3\nconfig:\n  bucket: {kv['S3_BUCKET']}\n  endpoint: {kv['S3_ENDPOINT'].replace('http://', '')}\n"
                 f"  region: {kv['S3_REGION']}\n  access_key: {kv['S3_ACCESS_KEY']}\n  secret_key: {kv['S3_SECRET_KEY']}\n"
                 f"  insecure: true\n")
        run_backend(tmp, "S3", s3cfg, blocks, base, expect)
    finally:
        if s3_env:
            subprocess.run([S3_CTL, "stop", "--purge"], env=s3_env, capture_output=True)
        if harness.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
