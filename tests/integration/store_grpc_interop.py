#!/usr/bin/python3
"""Interop of Strata's gRPC StoreAPI server with a real gRPC stack (Debian's python3-grpcio).

Python modules are generated from proto/ with `protoc --python_out`; tests/programs/store_testserver
serves an in-memory store (external labels region="eu", data described in its source) on a free
127.0.0.1 port. A grpcio client calls thanos.info.Info/Info and the thanos.Store methods and checks
the streamed series (sorted, external labels, XOR chunks of <= 120 samples decodable by the count in
their header, trimming, skip_chunks), errors (no matchers, bad regex, unknown method) and a large
stream read slowly (HTTP/2 flow control) and cancelled midway.
"""
import os, subprocess, sys, tempfile, time
from lib_harness import Harness

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
TEST_BIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build", "tests"))
harness = Harness("store_grpc_interop")
result, check = harness.result, harness.check


def main():
    import grpc

    tmp = tempfile.mkdtemp(prefix="strata-store-grpc.")
    protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + tmp] + protos,
                   check=True)
    sys.path.insert(0, tmp)
    import info_pb2
    import storepb_rpc_pb2 as rpc
    import storepb_types_pb2 as types

    procs = []

    def start(extra=0):
        p = subprocess.Popen([os.path.join(TEST_BIN, "store_testserver"), "127.0.0.1:0", str(extra)],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        line = p.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            raise RuntimeError(f"store_testserver did not start: {line}")
        return int(line[1])

    try:
        port = start()
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(ch).result(timeout=10)
        info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                              response_deserializer=info_pb2.InfoResponse.FromString)
        series = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                 response_deserializer=rpc.SeriesResponse.FromString)
        names = ch.unary_unary("/thanos.Store/LabelNames",
                               request_serializer=rpc.LabelNamesRequest.SerializeToString,
                               response_deserializer=rpc.LabelNamesResponse.FromString)
        values = ch.unary_unary("/thanos.Store/LabelValues",
                                request_serializer=rpc.LabelValuesRequest.SerializeToString,
                                response_deserializer=rpc.LabelValuesResponse.FromString)
        M = types.LabelMatcher

        def t_info():
            r = info(info_pb2.InfoRequest(), timeout=5)
            assert r.ComponentType == "store", r.ComponentType
            assert len(r.label_sets) == 1, r
            assert [(l.name, l.value) for l in r.label_sets[0].labels] == [("region", "eu")], r.label_sets
            assert r.HasField("store")
            assert r.store.min_time == 0 and r.store.max_time == 299 * 15000, r.store
            # the in-memory store does not drop replica labels: field 5 false
            assert not r.store.supports_without_replica_labels, r.store

        def collect(req, timeout=10):
            out, warns = [], []
            for resp in series(req, timeout=timeout):
                kind = resp.WhichOneof("result")
                if kind == "series":
                    out.append(resp.series)
                elif kind == "warning":
                    warns.append(resp.warning)
            return out, warns

        def lbls(s):
            return tuple((l.name, l.value) for l in s.labels)

        def chunk_count(c):
            assert c.raw.type == types.Chunk.XOR, c.raw.type
            return int.from_bytes(c.raw.data[:2], "big")

        def t_series_all():
            ss, warns = collect(rpc.SeriesRequest(min_time=0, max_time=10**13,
                                                  matchers=[M(type=M.RE, name="__name__", value=".+")]))
            got = [lbls(s) for s in ss]
            assert got == sorted(got), f"not sorted: {got}"
            assert len(ss) == 4, got
            assert got[0] == (("__name__", "http_requests_total"), ("code", "200"), ("job", "api"),
                              ("region", "eu")), got[0]
            assert warns == [], warns
            for s in ss:
                assert all(l.name != "" for l in s.labels)
                counts = [chunk_count(c) for c in s.chunks]
                assert all(0 < n <= 120 for n in counts), counts
                mins = [c.min_time for c in s.chunks]
                assert mins == sorted(mins), mins
            by = {lbls(s): s for s in ss}
            up_a = by[(("__name__", "up"), ("instance", "a"), ("job", "api"), ("region", "eu"))]
            assert [chunk_count(c) for c in up_a.chunks] == [120, 120, 60]
            assert up_a.chunks[0].min_time == 0 and up_a.chunks[0].max_time == 119 * 15000
            assert up_a.chunks[2].max_time == 299 * 15000
            # without_replica_labels (field 14) to a store without support: ignored, same answer
            ss2, _ = collect(rpc.SeriesRequest(min_time=0, max_time=10**13, without_replica_labels=["region"],
                                               matchers=[M(type=M.RE, name="__name__", value=".+")]))
            assert [lbls(s) for s in ss2] == got, [lbls(s) for s in ss2]

        def t_series_matchers_and_trim():
            req = rpc.SeriesRequest(min_time=2000 * 1000, max_time=2100 * 1000,
                                    matchers=[M(type=M.EQ, name="__name__", value="up"),
                                              M(type=M.NRE, name="job", value="db|x"),
                                              M(type=M.EQ, name="region", value="eu")])
            ss, _ = collect(req)
            assert [dict(lbls(s))["instance"] for s in ss] == ["a"], [lbls(s) for s in ss]
            # only the chunk overlapping [2000s, 2100s] (the second: 1800s..3585s)
            assert [(c.min_time, c.max_time) for c in ss[0].chunks] == [(1800000, 3585000)], ss[0].chunks
            # the 500 series ends at 135s: not returned for a later range
            ss, _ = collect(rpc.SeriesRequest(min_time=200000, max_time=300000,
                                              matchers=[M(type=M.EQ, name="code", value="500")]))
            assert ss == [], ss
            # empty matcher value: code="" selects series without a code label
            ss, _ = collect(rpc.SeriesRequest(min_time=0, max_time=10**13,
                                              matchers=[M(type=M.EQ, name="code", value="")]))
            assert sorted(dict(lbls(s))["instance"] for s in ss) == ["a", "b"]

        def t_external_label_mismatch():
            ss, _ = collect(rpc.SeriesRequest(min_time=0, max_time=10**13,
                                              matchers=[M(type=M.EQ, name="region", value="us"),
                                                        M(type=M.EQ, name="__name__", value="up")]))
            assert ss == [], ss

        def t_skip_chunks():
            ss, _ = collect(rpc.SeriesRequest(min_time=0, max_time=10**13, skip_chunks=True,
                                              matchers=[M(type=M.EQ, name="__name__", value="up")]))
            assert len(ss) == 2 and all(len(s.chunks) == 0 for s in ss), ss

        def t_errors():
            for req, code in ((rpc.SeriesRequest(min_time=0, max_time=1), grpc.StatusCode.INVALID_ARGUMENT),
                              (rpc.SeriesRequest(min_time=0, max_time=1,
                                                 matchers=[M(type=M.RE, name="a", value="(")]),
                               grpc.StatusCode.INVALID_ARGUMENT)):
                try:
                    collect(req)
                    raise AssertionError(f"no error for {req}")
                except grpc.RpcError as e:
                    assert e.code() == code, (e.code(), e.details())
            bad = ch.unary_unary("/thanos.Store/Nope", request_serializer=lambda x: x,
                                 response_deserializer=lambda x: x)
            try:
                bad(b"", timeout=5)
                raise AssertionError("unknown method answered")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code()

        def t_labels():
            r = names(rpc.LabelNamesRequest(start=0, end=10**13), timeout=5)
            assert list(r.names) == ["__name__", "code", "instance", "job", "region"], r.names
            r = values(rpc.LabelValuesRequest(label="__name__", start=0, end=10**13), timeout=5)
            assert list(r.values) == ["http_requests_total", "up"], r.values
            r = values(rpc.LabelValuesRequest(label="instance", start=0, end=10**13,
                                              matchers=[M(type=M.EQ, name="job", value="db")]), timeout=5)
            assert list(r.values) == ["b"], r.values

        for name, fn in (("info", t_info), ("series_all", t_series_all),
                         ("series_matchers_and_trimming", t_series_matchers_and_trim),
                         ("external_label_mismatch", t_external_label_mismatch), ("skip_chunks", t_skip_chunks),
                         ("errors", t_errors), ("label_names_values", t_labels)):
            check(name, fn)
        ch.close()

        # A large stream read slowly, then cancelled: the server keeps serving new calls.
        port2 = start(20000)
        ch2 = grpc.insecure_channel(f"127.0.0.1:{port2}")
        grpc.channel_ready_future(ch2).result(timeout=10)
        series2 = ch2.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                   response_deserializer=rpc.SeriesResponse.FromString)

        def t_stream_all():
            n = 0
            prev = None
            for resp in series2(rpc.SeriesRequest(min_time=0, max_time=10**13,
                                                  matchers=[M(type=M.EQ, name="__name__", value="load_series")]),
                                timeout=60):
                cur = lbls(resp.series)
                assert prev is None or prev < cur
                assert [chunk_count(c) for c in resp.series.chunks] == [120, 120]
                prev = cur
                n += 1
            assert n == 20000, n

        def t_cancel():
            it = series2(rpc.SeriesRequest(min_time=0, max_time=10**13,
                                           matchers=[M(type=M.EQ, name="__name__", value="load_series")]),
                         timeout=60)
            first = next(it)
            time.sleep(0.5)  # the server must be stopped by flow control, not buffer 20000 series
            assert first.series.labels[1].value == "000000"
            it.cancel()
            r = ch2.unary_unary("/thanos.info.Info/Info",
                                request_serializer=info_pb2.InfoRequest.SerializeToString,
                                response_deserializer=info_pb2.InfoResponse.FromString)(info_pb2.InfoRequest(),
                                                                                      timeout=5)
            assert r.ComponentType == "store"
            assert procs[-1].poll() is None, "server died"

        check("stream_20000_series", t_stream_all)
        check("cancel_midstream", t_cancel)
        ch2.close()
    finally:
        for p in procs:
            p.terminate()
            try:
                rc = p.wait(timeout=10)
                if rc != 0:
                    result("server_exit", False, f"store_testserver exited with {rc}")
            except subprocess.TimeoutExpired:
                p.kill()
                result("server_exit", False, "store_testserver did not stop on SIGTERM")
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
