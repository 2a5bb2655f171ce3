#!/usr/bin/python3
"""Differential test of the store gateway (issue 8): `strata query --endpoint=<strata store>` over a bucket
against a real Prometheus 2.42 over the same blocks.

The PromQL differential dataset (lib_promql_queries.gen), stretched to 8h and with 2,000 extra
`bulk_total` series (some starting late, some ending early), is turned into 2h blocks by promtool.
Prometheus serves a copy of the directory; the blocks are uploaded with `strata tools bucket
upload-blocks --label=cluster="eu1"` to a FILESYSTEM bucket and to the S3 test server
(scripts/s3-server, private port and data dir, stopped on exit), each served by `strata store` with a
`strata query` in front (all on free 127.0.0.1 ports). Every query of lib_promql_queries.QUERIES plus
queries over the bulk series runs at instant times just after block boundaries and as a range query
across all blocks; answers must agree (lib_promql_queries.compare) and error cases must fail in both.
"External labels aside": the querier treats `cluster` as a replica label, so it is removed before
evaluation as a deduplicating Thanos querier does (otherwise `x * ignoring(instance) group_left
sum by (job) (x)` cannot match, as in Thanos); the store still attaches it, and a matcher on another
cluster value must select nothing.
Prints "PASS storegwdiff:<backend>:<query> <params>" / "FAIL ...: why".
"""
import os, re, shutil, subprocess, sys, tempfile

from lib_harness import Harness, wait_ready, wait_until
from lib_promql_queries import QUERIES, T0, compare, free_port, gen, prom_query, start_prometheus, stop

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
S3_CTL = os.path.join(ROOT, "scripts", "s3-server")
SAMPLES = 4 * 480  # 8h at 15s: the data spans five 2h block windows (T0 is 800s past a 2h boundary)
BULK = 2000
BOUNDARY = T0 + 6400  # first 2h boundary after T0

BULK_QUERIES = [
    "count(bulk_total)", "sum by (shard) (rate(bulk_total[10m]))", 'bulk_total{i="17"}',
    'bulk_total{shard="s3",i=~"1.*"}', "topk(3, sum by (shard) (bulk_total))", "count by (shard) (bulk_total > 100000)",
    'max_over_time(bulk_total{shard="s5"}[30m])', 'increase(bulk_total{i=~"[0-9]"}[1h])',
    "count(count_over_time(bulk_total[2h]))", 'absent(bulk_total{i="99999"})',
    "sum(bulk_total) - sum(bulk_total offset 2h)", 'count({__name__=~"bulk_total|temperature"})',
    'group by (shard) (bulk_total{shard!~"s1.*"})', 'bulk_total{i="3"}', 'last_over_time(bulk_total{i="7"}[3h])',
    'rate(bulk_total{i="1234"}[5m])', 'sum without (i) (bulk_total{shard="s9"})', 'bulk_total{i="42"} offset 3h',
    'changes(bulk_total{shard="s2",i=~"1[0-9]{2}"}[1h])', 'count(bulk_total{cluster="other"})',
]
PARAMS = ({"time": BOUNDARY + 100}, {"time": BOUNDARY + 14400.5},
          {"start": T0 + 1800, "end": T0 + 4 * 7200 - 600, "step": 97})
harness = Harness("storegwdiff")


def result(name, why):
    """PASS when why is empty, else FAIL with it."""
    harness.result(name, not why, why or "")


def serve(tmp, backend, cfg, procs):
    """strata store over the bucket and strata query in front of it; returns the querier's HTTP port."""
    sg, sh, qg, qh = free_port(), free_port(), free_port(), free_port()
    log = open(os.path.join(tmp, f"store-{backend}.log"), "w")
    st = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data-" + backend),
                           f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s"], stdout=log, stderr=subprocess.STDOUT)
    procs.append(st)
    wait_ready(sh, st, "strata store")
    qlog = open(os.path.join(tmp, f"query-{backend}.log"), "w")
    qp = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                           f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                           "--store.sd-dns-interval=1s", "--query.replica-label=cluster"], stdout=qlog, stderr=subprocess.STDOUT)
    procs.append(qp)
    # ready once the querier has discovered the store and sees its data
    wait_until(lambda: prom_query(qh, "count(http_requests_total)", {"time": T0 + 3600})["data"]["result"], qp,
              "strata query over the store")
    return qh


def run_queries(backend, qport, pport):
    n = bad = 0
    queries = list(QUERIES) + [(e, False) for e in BULK_QUERIES]
    for expr, fail in queries:
        for params in PARAMS:
            n += 1
            p = prom_query(pport, expr, params)
            s = prom_query(qport, expr, params)
            if fail:
                why = None if (p["status"] == "error" and s["status"] == "error") else \
                    f"expected both to fail: prometheus={p['status']} strata={s['status']}"
            else:
                why = compare(p, s)
            bad += why is not None
            result(f"{backend}:{expr} {params}", why)
    print(f"{backend}: {n - bad}/{n} checks agree ({len(queries)} queries)")


def main():
    tmp = tempfile.mkdtemp(prefix="storegwdiff.")
    procs = []
    s3_env = None
    try:
        om = os.path.join(tmp, "in.om")
        gen(om, n=SAMPLES, bulk=BULK)
        blocks = os.path.join(tmp, "blocks")
        os.mkdir(blocks)
        r = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, blocks], capture_output=True,
                           text=True)
        os.unlink(om)
        if r.returncode != 0:
            result("promtool", r.stderr.strip()[-300:])
            return
        ulids = [d for d in os.listdir(blocks) if len(d) == 26]
        result("dataset", None if len(ulids) >= 4 else f"promtool made {len(ulids)} blocks, want >= 4")
        pdata = os.path.join(tmp, "pdata")
        shutil.copytree(blocks, pdata)
        prom, pport = start_prometheus(tmp, pdata)
        procs.append(prom)

        def upload(cfg):
            r = subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                                '--label=cluster="eu1"'], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"upload-blocks: {r.stderr.strip()[-300:]}")

        fscfg = f"type: FILESYSTEM\nconfig: {{directory: {os.path.join(tmp, 'fs')}}}"
        upload(fscfg)
        run_queries("FILESYSTEM", serve(tmp, "FILESYSTEM", fscfg, procs), pport)

        env = dict(os.environ, S3_PORT=str(free_port()), S3_DATA_DIR=os.path.join(tmp, "s3"))
        r = subprocess.run([S3_CTL, "start"], env=env, capture_output=True, text=True)
        s3_env = env  # stop also cleans up after a failed start
        if r.returncode != 0:
            result("S3:start", r.stderr.strip()[-300:])
            return
        kv = dict(re.findall(r"(S3_\w+)=['\"]?([^'\"\s]+)", r.stdout))
        s3cfg = (f"type: S3\nconfig:\n  bucket: {kv['S3_BUCKET']}\n  endpoint: {kv['S3_ENDPOINT'].replace('http://', '')}\n"
                 f"  region: {kv['S3_REGION']}\n  access_key: {kv['S3_ACCESS_KEY']}\n  secret_key: {kv['S3_SECRET_KEY']}\n"
                 f"  insecure: true\nprefix: storegwdiff")
        upload(s3cfg)
        run_queries("S3", serve(tmp, "S3", s3cfg, procs), pport)
    finally:
        for p in reversed(procs):
            stop(p)
        if s3_env:
            subprocess.run([S3_CTL, "stop", "--purge"], env=s3_env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is a test failure with its message
        result("setup", f"{type(e).__name__}: {e}")
    sys.exit(1 if harness.failed else 0)
