#!/usr/bin/python3
"""Store gateway benchmark (issue 8), run by bench/storegw_bench.sh.

1. Start-up to ready with STOREGW_BENCH_BLOCKS (default 1,000) 2h blocks in a FILESYSTEM bucket, at two
   index sizes (100 and 2,000 series per block, written by bench/storegw_blockgen with the TSDB block
   writer), cold (empty --data-dir: every index-header built from range reads) and warm (headers reused).
   Target: under 10 s and flat in the total index size.
2. Over the 2,000-series bucket: a query set of raw-data fetches (Series over gRPC for `strata store`;
   remote read with STREAMED_XOR_CHUNKS for Prometheus 2.42 started over a hard-linked copy of the same
   blocks, compaction and retention off). Both answer the same matchers and time ranges; series counts
   are checked equal. Reports median latency per query and overall, and RSS (idle after ready and peak
   while serving, sampled every 20 ms from /proc) of both. Target: strata RSS <= 0.25x Prometheus's.
3. The issue's latency target, through store + query: PromQL range queries over the same 7 selections
   sent to `strata query --endpoint=<the store>` and to Prometheus's own /api/v1/query_range (same
   expression, start, end, step; series and point counts checked equal). Median per query and the
   ratio of the medians. Target: <= 0.5x Prometheus's.
Prints RESULT lines.
"""
import json, os, shutil, socket, statistics, struct, subprocess, sys, tempfile, threading, time, urllib.parse, \
    urllib.request

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
BENCH_BIN = os.environ.get("STRATA_BENCH_BIN", os.path.join(ROOT, "build", "bench"))
NBLOCKS = int(os.environ.get("STOREGW_BENCH_BLOCKS", "1000"))
ROUNDS = 5
H2 = 7200 * 1000
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_ready(url, p, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return time.time() - t0
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if p.poll() is not None:
            raise RuntimeError(f"{p.args[0]} exited with {p.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Store:
    def __init__(self, tmp, bucket, data_dir):
        self.grpc_port, self.http_port = free_port(), free_port()
        self.log = open(os.path.join(tmp, f"store-{self.http_port}.log"), "w")
        t0 = time.time()
        self.p = subprocess.Popen([STRATA, "store", f"--objstore.config=type: FILESYSTEM\nconfig: {{directory: {bucket}}}",
                                   "--data-dir=" + data_dir, f"--grpc-address=127.0.0.1:{self.grpc_port}",
                                   f"--http-address=127.0.0.1:{self.http_port}", "--http-grace-period=1s",
                                   "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self.p)
        wait_ready(f"http://127.0.0.1:{self.http_port}/-/ready", self.p, 120)
        self.ready_after = time.time() - t0

    def stop(self):
        stop(self.p)
        self.log.close()


def snappy_literal(data):
    """Snappy block format with literal elements only (valid input for any snappy decoder)."""
    out = bytearray()
    n = len(data)
    while True:  # uvarint length
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    for i in range(0, len(data), 65536):
        piece = data[i:i + 65536]
        ln = len(piece) - 1
        if ln < 60:
            out.append(ln << 2)
        else:
            out.append(61 << 2)  # 2-byte little-endian length follows
            out += struct.pack("<H", ln)
        out += piece
    return bytes(out)


def uvarint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << s
        if c < 0x80:
            return x, i
        s += 7


def main():
    import grpc

    tmp = tempfile.mkdtemp(prefix="strata-storegw-bench.")
    try:
        protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + tmp] + protos,
                       check=True)
        sys.path.insert(0, tmp)
        import prompb_remote_pb2 as rr
        import prompb_types_pb2 as pt
        import storepb_rpc_pb2 as rpc
        import storepb_types_pb2 as types

        end = int(time.time() * 1000) // H2 * H2
        begin = end - NBLOCKS * H2
        buckets = {}
        for name, nseries in (("100series", 100), ("2000series", 2000)):
            bucket = os.path.join(tmp, "bucket-" + name)
            os.makedirs(bucket)
            t0 = time.time()
            subprocess.run([os.path.join(BENCH_BIN, "storegw_blockgen"), bucket, str(NBLOCKS), str(nseries), str(end)],
                           check=True, stdout=subprocess.DEVNULL)
            gen = time.time() - t0
            ix = sum(os.path.getsize(os.path.join(bucket, d, "index")) for d in os.listdir(bucket))
            print(f"  {name}: {NBLOCKS} blocks written in {gen:.1f}s, total index {ix / 1e6:.1f} MB")
            buckets[name] = bucket
            data_dir = os.path.join(tmp, "data-" + name)
            st = Store(tmp, bucket, data_dir)
            cold = st.ready_after
            st.stop()
            st = Store(tmp, bucket, data_dir)
            warm = st.ready_after
            st.stop()
            print(f"RESULT storegw_startup_{NBLOCKS}blocks_{name}_cold {cold:.2f} s (total index {ix / 1e6:.1f} MB, "
                  f"headers built; target < 10 s)")
            print(f"RESULT storegw_startup_{NBLOCKS}blocks_{name}_warm {warm:.2f} s (headers reused)")
            sys.stdout.flush()

        # ---- query set over the 2000-series bucket ----
        bucket = buckets["2000series"]
        M = types.LabelMatcher
        PM = pt.LabelMatcher
        queries = [  # (name, [(type, name, value)], range in blocks back from end)
            ("one_series_all", [("EQ", "a", "a1"), ("EQ", "b", "b2"), ("EQ", "c", "c00007")], NBLOCKS),
            ("one_series_30d", [("EQ", "a", "a3"), ("EQ", "b", "b4"), ("EQ", "c", "c00011")], 360),
            ("20_series_1d", [("EQ", "a", "a5"), ("EQ", "b", "b6")], 12),
            ("200_series_6h", [("EQ", "b", "b3")], 3),
            ("regex_50_series_2d", [("RE", "a", "a[0-4]"), ("EQ", "b", "b0"), ("RE", "c", "c0000[0-9]")], 24),
            ("neq_9_series_7d", [("NEQ", "a", "a0"), ("EQ", "b", "b5"), ("EQ", "c", "c00010")], 84),
            ("all_2000_series_2h", [("EQ", "__name__", "bench_metric")], 1),
        ]

        st = Store(tmp, bucket, os.path.join(tmp, "data-2000series"))
        prom_dir = os.path.join(tmp, "prom")
        os.makedirs(prom_dir)
        for d in os.listdir(bucket):
            shutil.copytree(os.path.join(bucket, d), os.path.join(prom_dir, d), copy_function=os.link)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1m}\nscrape_configs: []\n")
        pport = free_port()
        plog = open(os.path.join(tmp, "prometheus.log"), "w")
        t0 = time.time()
        prom = subprocess.Popen(["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + prom_dir,
                                 f"--web.listen-address=127.0.0.1:{pport}", "--storage.tsdb.retention.time=100y",
                                 "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
                                 "--log.level=warn"], stdout=plog, stderr=subprocess.STDOUT)
        procs.append(prom)
        wait_ready(f"http://127.0.0.1:{pport}/-/ready", prom, 300)
        print(f"  prometheus ready after {time.time() - t0:.1f}s; strata store after {st.ready_after:.1f}s")
        time.sleep(2)
        idle = {"strata": rss_kib(st.p.pid), "prometheus": rss_kib(prom.pid)}
        peak = dict(idle)
        sampling = True

        def sampler():
            while sampling:
                for k, pid in (("strata", st.p.pid), ("prometheus", prom.pid)):
                    peak[k] = max(peak[k], rss_kib(pid))
                time.sleep(0.02)
        th = threading.Thread(target=sampler)
        th.start()

        ch = grpc.insecure_channel(f"127.0.0.1:{st.grpc_port}", options=[("grpc.max_receive_message_length", 1 << 28)])
        grpc.channel_ready_future(ch).result(timeout=10)
        series_rpc = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                     response_deserializer=rpc.SeriesResponse.FromString)

        def strata_q(ms, mint, maxt):
            req = rpc.SeriesRequest(min_time=mint, max_time=maxt,
                                    matchers=[M(type=getattr(M, t), name=n, value=v) for t, n, v in ms])
            ns = nc = 0
            for resp in series_rpc(req, timeout=120):
                if resp.WhichOneof("result") == "series":
                    ns += 1
                    nc += len(resp.series.chunks)
            return ns, nc

        def prom_q(ms, mint, maxt):
            req = rr.ReadRequest(queries=[rr.Query(start_timestamp_ms=mint, end_timestamp_ms=maxt,
                                                   matchers=[PM(type=getattr(PM, t), name=n, value=v) for t, n, v in ms])],
                                 accepted_response_types=[rr.ReadRequest.STREAMED_XOR_CHUNKS])
            body = snappy_literal(req.SerializeToString())
            hreq = urllib.request.Request(f"http://127.0.0.1:{pport}/api/v1/read", data=body, method="POST",
                                          headers={"Content-Type": "application/x-protobuf",
                                                   "Content-Encoding": "snappy",
                                                   "X-Prometheus-Remote-Read-Version": "0.1.0"})
            data = urllib.request.urlopen(hreq, timeout=120).read()
            seen = set()
            nc = 0
            i = 0
            while i < len(data):
                n, i = uvarint(data, i)
                i += 4  # crc32c
                msg = rr.ChunkedReadResponse.FromString(data[i:i + n])
                i += n
                for cs in msg.chunked_series:
                    seen.add(tuple((l.name, l.value) for l in cs.labels))
                    nc += len(cs.chunks)
            return len(seen), nc

        lat = {"strata": [], "prometheus": []}
        per_query = []
        for qname, ms, nb in queries:
            mint, maxt = end - nb * H2, end - 1
            ts, tp = [], []
            counts = None
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                cs = strata_q(ms, mint, maxt)
                ts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                cp = prom_q(ms, mint, maxt)
                tp.append(time.perf_counter() - t0)
                if cs[0] != cp[0]:
                    raise AssertionError(f"{qname}: strata {cs[0]} series, prometheus {cp[0]}")
                counts = (cs, cp)
            ms_s, ms_p = statistics.median(ts) * 1000, statistics.median(tp) * 1000
            lat["strata"].append(ms_s)
            lat["prometheus"].append(ms_p)
            per_query.append(qname)
            print(f"  {qname}: {counts[0][0]} series, chunks strata {counts[0][1]} / prometheus {counts[1][1]}; "
                  f"median strata {ms_s:.1f} ms, prometheus {ms_p:.1f} ms")
            print(f"RESULT storegw_series_{qname}_ms {ms_s:.1f} ms (prometheus remote read {ms_p:.1f} ms, "
                  f"median of {ROUNDS})")
            sys.stdout.flush()
        # ---- PromQL through strata query over the store vs Prometheus's own query API ----
        qg, qh = free_port(), free_port()
        qlog = open(os.path.join(tmp, "query.log"), "w")
        qp = subprocess.Popen([STRATA, "query", f"--endpoint=127.0.0.1:{st.grpc_port}", f"--http-address=127.0.0.1:{qh}",
                               f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                               "--store.sd-dns-interval=1s", "--log.level=warn"], stdout=qlog, stderr=subprocess.STDOUT)
        procs.append(qp)

        def api(port, expr, start, stop_, step):
            data = urllib.parse.urlencode({"query": expr, "start": start, "end": stop_, "step": step}).encode()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range", data=data, timeout=120) as r:
                res = json.load(r)
            if res.get("status") != "success":
                raise AssertionError(f"{expr}: {res}")
            return len(res["data"]["result"]), sum(len(x["values"]) for x in res["data"]["result"])

        t0 = time.time()
        while True:  # ready once the querier has discovered the store
            try:
                if api(qh, "count(bench_metric)", end / 1000 - 3600, end / 1000 - 60, 60)[0]:
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.time() - t0 > 30:
                raise RuntimeError("strata query did not see the store")
            time.sleep(0.2)
        promql = [  # (name, expression, range in blocks back from end, step s)
            ("one_series_all", 'rate(bench_metric{a="a1",b="b2",c="c00007"}[5m])', NBLOCKS, NBLOCKS * 7200 // 250),
            ("one_series_30d", 'bench_metric{a="a3",b="b4",c="c00011"}', 360, 3600),
            ("20_series_1d", 'sum(rate(bench_metric{a="a5",b="b6"}[5m]))', 12, 300),
            ("200_series_6h", 'sum by (a) (rate(bench_metric{b="b3"}[5m]))', 3, 60),
            ("regex_50_series_2d", 'max(bench_metric{a=~"a[0-4]",b="b0",c=~"c0000[0-9]"})', 24, 600),
            ("neq_9_series_7d", 'avg_over_time(bench_metric{a!="a0",b="b5",c="c00010"}[1h])', 84, 1800),
            ("all_2000_series_2h", "sum(rate(bench_metric[5m]))", 1, 60),
        ]
        qlat = {"strata": [], "prometheus": []}
        for qname, expr, nb, step in promql:
            start, stop_ = (end - nb * H2) / 1000 + 300, (end - 1) / 1000
            ts, tp = [], []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                cs = api(qh, expr, start, stop_, step)
                ts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                cp = api(pport, expr, start, stop_, step)
                tp.append(time.perf_counter() - t0)
                if cs != cp:
                    raise AssertionError(f"{qname}: strata query {cs} (series, points), prometheus {cp}")
            ms_s, ms_p = statistics.median(ts) * 1000, statistics.median(tp) * 1000
            qlat["strata"].append(ms_s)
            qlat["prometheus"].append(ms_p)
            print(f"  promql {qname}: {cs[0]} series, {cs[1]} points; median strata query+store {ms_s:.1f} ms, "
                  f"prometheus {ms_p:.1f} ms")
            print(f"RESULT storegw_promql_{qname}_ms {ms_s:.1f} ms (prometheus {ms_p:.1f} ms, median of {ROUNDS})")
            sys.stdout.flush()
        stop(qp)
        qlog.close()
        sampling = False
        th.join()
        ch.close()
        qs, qp_ = statistics.median(qlat["strata"]), statistics.median(qlat["prometheus"])
        print(f"RESULT storegw_promql_median_ms {qs:.1f} ms (strata query + store; prometheus {qp_:.1f} ms)")
        print(f"RESULT storegw_promql_latency_ratio {qs / qp_:.2f} x (median over the {len(promql)} PromQL queries' "
              f"medians, strata query over the store / prometheus; target <= 0.5)")
        ms_s, ms_p = statistics.median(lat["strata"]), statistics.median(lat["prometheus"])
        print(f"RESULT storegw_series_median_ms {ms_s:.1f} ms (median over the {len(queries)} queries' medians)")
        print(f"RESULT storegw_prometheus_remote_read_median_ms {ms_p:.1f} ms")
        print(f"RESULT storegw_latency_ratio {ms_s / ms_p:.2f} x (strata Series / prometheus remote read)")
        print(f"RESULT storegw_rss_idle_mib {idle['strata'] / 1024:.1f} MiB (prometheus {idle['prometheus'] / 1024:.1f} MiB, "
              f"{NBLOCKS} blocks x 2000 series)")
        print(f"RESULT storegw_rss_peak_mib {peak['strata'] / 1024:.1f} MiB (prometheus {peak['prometheus'] / 1024:.1f} MiB)")
        print(f"RESULT storegw_rss_ratio {peak['strata'] / peak['prometheus']:.3f} x (peak while serving the query set, "
              f"target <= 0.25)")
        st.stop()
        stop(prom)
        plog.close()
        return 0
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
