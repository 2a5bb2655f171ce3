#!/usr/bin/python3
"""`strata store` over promtool-made blocks in FILESYSTEM and S3 buckets.

Blocks are created by promtool from a generated OpenMetrics file (3 x 2h windows, 300 series),
uploaded with `strata tools bucket upload-blocks --label cluster="eu1"`, then served by `strata store`
(free 127.0.0.1 ports, private data dir). A grpcio client (python modules generated from proto/)
compares Series with `promtool tsdb dump` of the same blocks (label sets, and per series the sample
count carried by the XOR chunk headers), checks trimming, label calls and Info; then a block added
appears after a sync, a deletion-marked block disappears, a partial upload is ignored, a block with
a corrupt index fails to load while the rest keeps serving, and a warm restart builds no
index-header again (objstore get_range operations stay 0).
"""
import os, re, shutil, subprocess, sys, tempfile, time, urllib.request
from lib_harness import Harness, free_port

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
S3_CTL = os.path.join(ROOT, "scripts", "s3-server")
harness = Harness("storegw_promtool")
result, check = harness.result, harness.check


def promtool_blocks(tmp, windows, name):
    """One block per 2h window (window indexes relative to an aligned base)."""
    base = (int(time.time()) // 7200 - 10) * 7200
    om = os.path.join(tmp, name + ".om")
    with open(om, "w") as f:
        f.write("# TYPE m counter\n")
        lines = []
        for w in windows:
            for i in range(0, 7200, 60):
                t = base + w * 7200 + i
                for s in range(300):
                    lines.append((t, f'm_total{{job="j{s % 3}",inst="i{s:03d}"}} {t % 1000 + s} {t}\n'))
        lines.sort(key=lambda x: x[0])
        f.writelines(l for _, l in lines)
        f.write("# EOF\n")
    out = os.path.join(tmp, name)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, base


def dump_counts(blocks_dir):
    """label-set string -> sample count, from promtool tsdb dump."""
    wal = os.path.join(blocks_dir, "wal")  # promtool dump opens the WAL too
    os.makedirs(wal, exist_ok=True)
    r = subprocess.run(["promtool", "tsdb", "dump", blocks_dir], check=True, capture_output=True, text=True)
    os.rmdir(wal)
    counts = {}
    for line in r.stdout.splitlines():
        if not line.startswith("{"):
            continue
        ls = line[:line.rindex("}") + 1]
        counts[ls] = counts.get(ls, 0) + 1
    return counts


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    found = False
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if labels and labels not in line:
                continue
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


class Store:
    def __init__(self, tmp, cfg, data_dir, extra=()):
        self.grpc_port, self.http_port = free_port(), free_port()
        self.log = open(os.path.join(tmp, f"store-{self.http_port}.log"), "w")
        self.p = subprocess.Popen([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + data_dir,
                                   f"--grpc-address=127.0.0.1:{self.grpc_port}",
                                   f"--http-address=127.0.0.1:{self.http_port}", "--sync-block-duration=1s",
                                   "--ignore-deletion-marks-delay=0s", "--http-grace-period=1s", *extra],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < 20:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/-/ready", timeout=1).status == 200:
                    self.ready_after = time.time() - t0
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if self.p.poll() is not None:
                raise RuntimeError(f"strata store exited with {self.p.returncode}")
            time.sleep(0.1)
        raise RuntimeError("strata store not ready after 20s")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def main():
    import grpc

    tmp = tempfile.mkdtemp(prefix="strata-storegw.")
    stores = []
    s3_env = None
    try:
        protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + tmp] + protos,
                       check=True)
        sys.path.insert(0, tmp)
        import info_pb2
        import storepb_rpc_pb2 as rpc
        import storepb_types_pb2 as types
        M = types.LabelMatcher

        blocks, base = promtool_blocks(tmp, [0, 1, 2], "blocks")
        expect = dump_counts(blocks)
        ulids = sorted(d for d in os.listdir(blocks) if len(d) == 26)
        assert len(ulids) == 3, ulids

        def upload(cfg, path):
            subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + path,
                            '--label=cluster="eu1"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def client(st):
            ch = grpc.insecure_channel(f"127.0.0.1:{st.grpc_port}")
            grpc.channel_ready_future(ch).result(timeout=10)
            series = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                     response_deserializer=rpc.SeriesResponse.FromString)
            info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                                  response_deserializer=info_pb2.InfoResponse.FromString)
            values = ch.unary_unary("/thanos.Store/LabelValues",
                                    request_serializer=rpc.LabelValuesRequest.SerializeToString,
                                    response_deserializer=rpc.LabelValuesResponse.FromString)
            return ch, series, info, values

        def fetch(series, matchers, mint=0, maxt=10**14):
            out = {}
            req = rpc.SeriesRequest(min_time=mint, max_time=maxt, matchers=matchers)
            for resp in series(req, timeout=30):
                if resp.WhichOneof("result") != "series":
                    continue
                s = resp.series
                lb = [(l.name, l.value) for l in s.labels]
                assert ("cluster", "eu1") in lb, lb
                key = "{" + ", ".join(f'{n}="{v}"' for n, v in lb if n != "cluster") + "}"
                assert key not in out, f"duplicate series {key}"
                out[key] = [(c.min_time, c.max_time, int.from_bytes(c.raw.data[:2], "big")) for c in s.chunks]
            return out

        def run_backend(backend, cfg):
            upload(cfg, blocks)
            data_dir = os.path.join(tmp, "data-" + backend)
            st = Store(tmp, cfg, data_dir)
            stores.append(st)
            ch, series, info, values = client(st)
            name = backend

            def t_series_equal_promtool_dump():
                got = fetch(series, [M(type=M.EQ, name="__name__", value="m_total")])
                counts = {k: sum(c[2] for c in v) for k, v in got.items()}
                assert len(counts) == len(expect) == 300, (len(counts), len(expect))
                diff = [k for k in expect if counts.get(k) != expect[k]]
                assert not diff, f"{len(diff)} series differ, e.g. {diff[0]}: {counts.get(diff[0])} vs {expect[diff[0]]}"
            check(f"{name}:series_equal_promtool_dump", t_series_equal_promtool_dump)

            def t_matchers_and_trim():
                got = fetch(series, [M(type=M.RE, name="inst", value="i00.|i01[0-4]"), M(type=M.NEQ, name="job", value="j0")])
                assert len(got) == 10, len(got)
                t0 = (base + 7200) * 1000
                got = fetch(series, [M(type=M.EQ, name="inst", value="i042")], t0, t0 + 60000)
                assert len(got) == 1
                (chunks,) = got.values()
                assert all(c[0] <= t0 + 60000 and c[1] >= t0 for c in chunks), chunks
                got = fetch(series, [M(type=M.EQ, name="cluster", value="other")])
                assert not got
            check(f"{name}:matchers_trim_external_labels", t_matchers_and_trim)

            def t_labels_info():
                r = values(rpc.LabelValuesRequest(label="job", start=0, end=10**14), timeout=10)
                assert list(r.values) == ["j0", "j1", "j2"], r.values
                r = info(info_pb2.InfoRequest(), timeout=5)
                assert r.ComponentType == "store"
                assert [(l.name, l.value) for l in r.label_sets[0].labels] == [("cluster", "eu1")]
                assert r.store.min_time == base * 1000, (r.store.min_time, base * 1000)
            check(f"{name}:label_values_info", t_labels_info)
            ch.close()
            return st, data_dir

        # ---------------- FILESYSTEM ----------------
        fsdir = os.path.join(tmp, "fs")
        fscfg = f"type: FILESYSTEM\nconfig: {{directory: {fsdir}}}"
        st, data_dir = run_backend("FILESYSTEM", fscfg)
        _, series, info, _ = client(st)

        def wait_blocks(n, timeout=15):
            t0 = time.time()
            while time.time() - t0 < timeout:
                if metric(st.http_port, "thanos_bucket_store_blocks_loaded") == n:
                    return
                time.sleep(0.2)
            raise AssertionError(f"blocks loaded {metric(st.http_port, 'thanos_bucket_store_blocks_loaded')} != {n}")

        def t_added_block():
            more, _ = promtool_blocks(tmp, [3], "more")
            upload(fscfg, more)
            wait_blocks(4)
            got = fetch(series, [M(type=M.EQ, name="inst", value="i007")])
            assert sum(c[2] for c in list(got.values())[0]) == 4 * 120, got
        check("FILESYSTEM:block_added_appears", t_added_block)

        def t_partial_ignored():
            pid = "01" + "Z" * 24
            os.makedirs(os.path.join(fsdir, pid, "chunks"))
            shutil.copy(os.path.join(fsdir, ulids[0], "index"), os.path.join(fsdir, pid, "index"))
            time.sleep(2.5)
            wait_blocks(4)
            assert urllib.request.urlopen(f"http://127.0.0.1:{st.http_port}/-/ready", timeout=2).status == 200
        check("FILESYSTEM:partial_upload_ignored", t_partial_ignored)

        bad_id = []

        def t_corrupt_index():
            bad, _ = promtool_blocks(tmp, [5], "bad")
            bid = [d for d in os.listdir(bad) if len(d) == 26][0]
            with open(os.path.join(bad, bid, "index"), "r+b") as f:
                f.seek(12)
                f.write(b"\x7f\x7f\x7f")
            upload(fscfg, bad)
            bad_id.append(bid)
            t0 = time.time()
            while (metric(st.http_port, "thanos_bucket_store_block_load_failures_total") or 0) < 1:
                assert time.time() - t0 < 15, "no load failure recorded"
                time.sleep(0.2)
            wait_blocks(4)
            got = fetch(series, [M(type=M.EQ, name="__name__", value="m_total")])
            assert len(got) == 300
        check("FILESYSTEM:corrupt_index_fails_alone", t_corrupt_index)

        def t_deletion_mark():
            with open(os.path.join(fsdir, ulids[0], "deletion-mark.json"), "w") as f:
                f.write('{"id":"%s","version":1,"deletion_time":%d}' % (ulids[0], int(time.time()) - 5))
            wait_blocks(3)
            got = fetch(series, [M(type=M.EQ, name="inst", value="i007")])
            assert sum(c[2] for c in list(got.values())[0]) == 3 * 120, got
            assert not os.path.exists(os.path.join(data_dir, ulids[0])), "local header of dropped block kept"
        check("FILESYSTEM:deletion_marked_block_disappears", t_deletion_mark)

        def t_warm_restart():
            first = metric(st.http_port, "objstore_bucket_operations_total", 'operation="get_range"')
            for b in bad_id:  # a failed block is retried at every sync: take it out of the bucket
                shutil.rmtree(os.path.join(fsdir, b))
            st.stop()
            st2 = Store(tmp, fscfg, data_dir)
            stores.append(st2)
            again = metric(st2.http_port, "objstore_bucket_operations_total", 'operation="get_range"') or 0
            assert first and first > 0, first
            assert again == 0, f"warm restart made {again} range reads (cold: {first})"
            _, series2, _, _ = client(st2)
            got = fetch(series2, [M(type=M.EQ, name="inst", value="i007")])
            assert sum(c[2] for c in list(got.values())[0]) == 3 * 120
        check("FILESYSTEM:warm_restart_reuses_headers", t_warm_restart)

        # ---------------- S3 ----------------
        env = dict(os.environ, S3_PORT=str(free_port()), S3_DATA_DIR=os.path.join(tmp, "s3"))
        r = subprocess.run([S3_CTL, "start"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            result("S3:start", False, r.stderr[-300:])
            return
        s3_env = env
        kv = dict(re.findall(r"(S3_\w+)=['\"]?([^'\"\s]+)", r.stdout))
        s3cfg = (f"type: S3\nconfig:\n  bucket: {kv['S3_BUCKET']}\n  endpoint: {kv['S3_ENDPOINT'].replace('http://', '')}\n"
                 f"  region: {kv['S3_REGION']}\n  access_key: {kv['S3_ACCESS_KEY']}\n  secret_key: {kv['S3_SECRET_KEY']}\n"
                 f"  insecure: true\nprefix: storegw")
        run_backend("S3", s3cfg)
    finally:
        for s in stores:
            s.stop()
        if s3_env:
            subprocess.run([S3_CTL, "stop", "--purge"], env=s3_env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        result("setup", False, f"{type(e).__name__}: {e}")
    sys.exit(1 if harness.failed else 0)
