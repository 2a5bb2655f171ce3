#!/usr/bin/python3
"""Interop of Strata's StoreAPI gRPC client with a real gRPC server stack (Debian's python3-grpcio).

A grpcio server with generic handlers (messages built with python protobuf from our proto/ files)
serves thanos.info.Info/Info and thanos.Store/{Series,LabelNames,LabelValues} on a free 127.0.0.1
port; tests/programs/storeapi_client (store/grpc_client.h) queries it and prints what it got. Checks:
info, series with XOR chunks decoded to the right samples and trimmed to the range, a series split over
two frames merged, warnings, label names/values, the server's error status and message, a stream
aborted mid-way by the server, a deadline against a slow server, a large stream (flow control), a
compressed request the server cannot decode (clean error), and an unreachable endpoint.
"""
import os, struct, subprocess, sys, tempfile, time
from concurrent import futures
from lib_harness import Harness

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
TEST_BIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build", "tests"))
harness = Harness("grpc_client_interop")
result, check = harness.result, harness.check


class BitWriter:
    def __init__(self):
        self.bits = []

    def write(self, value, n):
        for i in range(n - 1, -1, -1):
            self.bits.append((value >> i) & 1)

    def bytes(self):
        out = bytearray()
        for i in range(0, len(self.bits), 8):
            chunk = self.bits[i:i + 8] + [0] * (8 - len(self.bits[i:i + 8]))
            out.append(int("".join(map(str, chunk)), 2))
        return bytes(out)


def uvarint(x):
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def varint(x):
    return uvarint((x << 1) ^ (x >> 63) if x >= 0 else ((-x) << 1) - 1)


def xor_chunk(samples):
    """Prometheus XOR chunk for samples [(t, v)] with a constant step: only the simplest encodings
    (dod = 0 after the second sample, values repeated or written as full 64-bit XOR with 0 leading
    control bits) are produced — enough to be a valid chunk any decoder must read."""
    w = BitWriter()
    t0, v0 = samples[0]
    head = varint(t0) + struct.pack(">d", v0)
    prev_v = struct.unpack(">Q", struct.pack(">d", v0))[0]
    body = BitWriter()
    prev_t, delta = t0, 0
    for i, (t, v) in enumerate(samples[1:], start=1):
        if i == 1:
            delta = t - t0
            extra = uvarint(delta)
        else:
            dod = (t - prev_t) - delta
            assert dod == 0, "constant step only"
            body.write(0, 1)
            extra = None
        prev_t = t
        bits = struct.unpack(">Q", struct.pack(">d", v))[0]
        x = bits ^ prev_v
        prev_v = bits
        if i == 1:
            # the first delta is a uvarint, byte-aligned after the header
            head += extra
        if x == 0:
            body.write(0, 1)
        else:
            lead = 64 - x.bit_length()
            trail = (x & -x).bit_length() - 1
            lead = min(lead, 31)
            sig = 64 - lead - trail
            body.write(0b11, 2)
            body.write(lead, 5)
            body.write(sig if sig < 64 else 0, 6)
            body.write(x >> trail, sig)
    del w
    return struct.pack(">H", len(samples)) + head + body.bytes()


def main():
    import grpc

    tmp = tempfile.mkdtemp(prefix="strata-grpc-client.")
    protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + tmp] + protos,
                   check=True)
    sys.path.insert(0, tmp)
    import info_pb2
    import storepb_rpc_pb2 as rpc
    import storepb_types_pb2 as types
    import labelpb_pb2 as lpb

    def L(**kw):
        return [lpb.Label(name=k, value=v) for k, v in sorted(kw.items())]

    STEP = 15000

    def series(labels, n, start=0, value=lambda i: float(i)):
        chunks = []
        for c0 in range(0, n, 120):
            s = [(start + i * STEP, value(i)) for i in range(c0, min(n, c0 + 120))]
            chunks.append(types.AggrChunk(min_time=s[0][0], max_time=s[-1][0],
                                          raw=types.Chunk(type=types.Chunk.XOR, data=xor_chunk(s))))
        return types.Series(labels=labels, chunks=chunks)

    def matcher_value(req, name):
        for m in req.matchers:
            if m.name == name:
                return m.value
        return None

    def info(req, ctx):
        return info_pb2.InfoResponse(ComponentType="sidecar",
                                     label_sets=[lpb.ZLabelSet(labels=L(cluster="py", replica="0"))],
                                     store=info_pb2.StoreInfo(min_time=0, max_time=299 * STEP))

    def series_handler(req, ctx):
        mode = matcher_value(req, "__name__")
        if mode == "up":
            # two series; the second split over two frames (chunks 1..2, then chunk 0)
            yield rpc.SeriesResponse(series=series(L(__name__="up", cluster="py", instance="a"), 300))
            b = series(L(__name__="up", cluster="py", instance="b"), 300, value=lambda i: 2.0)
            yield rpc.SeriesResponse(series=types.Series(labels=b.labels, chunks=b.chunks[1:]))
            yield rpc.SeriesResponse(series=types.Series(labels=b.labels, chunks=b.chunks[:1]))
            yield rpc.SeriesResponse(warning="py store: some block was skipped")
        elif mode == "abort":
            yield rpc.SeriesResponse(series=series(L(__name__="abort", i="0"), 10))
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "store went away")
        elif mode == "slow":
            time.sleep(2)
            yield rpc.SeriesResponse(series=series(L(__name__="slow"), 1))
        elif mode == "many":
            for i in range(5000):
                yield rpc.SeriesResponse(series=series(L(__name__="many", i=f"{i:05d}"), 240))
        else:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad matcher set: {mode!r}")

    def label_names(req, ctx):
        return rpc.LabelNamesResponse(names=["__name__", "cluster", "instance"], warnings=["names are partial"])

    def label_values(req, ctx):
        if req.label != "instance":
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"no label {req.label}")
        return rpc.LabelValuesResponse(values=["a", "b"])

    handlers = {
        "Series": grpc.unary_stream_rpc_method_handler(series_handler, request_deserializer=rpc.SeriesRequest.FromString,
                                                       response_serializer=rpc.SeriesResponse.SerializeToString),
        "LabelNames": grpc.unary_unary_rpc_method_handler(label_names,
                                                          request_deserializer=rpc.LabelNamesRequest.FromString,
                                                          response_serializer=rpc.LabelNamesResponse.SerializeToString),
        "LabelValues": grpc.unary_unary_rpc_method_handler(label_values,
                                                           request_deserializer=rpc.LabelValuesRequest.FromString,
                                                           response_serializer=rpc.LabelValuesResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("thanos.Store", handlers),
        grpc.method_handlers_generic_handler("thanos.info.Info", {
            "Info": grpc.unary_unary_rpc_method_handler(info, request_deserializer=info_pb2.InfoRequest.FromString,
                                                        response_serializer=info_pb2.InfoResponse.SerializeToString)}),
    ))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    addr = f"127.0.0.1:{port}"
    client = os.path.join(TEST_BIN, "storeapi_client")

    def run(*args, ok=True, timeout=60):
        p = subprocess.run([client, *args], capture_output=True, text=True, timeout=timeout)
        if ok and p.returncode != 0:
            raise AssertionError(f"storeapi_client {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
        if not ok and p.returncode != 1:
            raise AssertionError(f"storeapi_client {' '.join(args)}: exit {p.returncode}, want 1: {p.stdout}")
        return p.stdout.splitlines(), p.stderr.strip()

    try:
        def t_info():
            out, _ = run(addr, "info")
            assert out == ['labelset {cluster="py", replica="0"}', f"range 0 {299 * STEP}", "component sidecar"], out

        def t_series():
            out, _ = run(addr, "series", '{__name__="up"}')
            assert out == [
                f'up{{cluster="py", instance="a"}} chunks=3 samples=300 sum={sum(range(300))} first=0 last={299 * STEP}',
                f'up{{cluster="py", instance="b"}} chunks=3 samples=300 sum=600 first=0 last={299 * STEP}',
                f"warning: store {addr}: py store: some block was skipped",
            ], out

        def t_series_trimmed():
            out, _ = run(addr, "series", '{__name__="up"}', str(10 * STEP), str(20 * STEP))
            assert out[0] == (f'up{{cluster="py", instance="a"}} chunks=3 samples=11 sum={sum(range(10, 21))} '
                              f'first={10 * STEP} last={20 * STEP}'), out

        def t_labels():
            out, _ = run(addr, "labels")
            assert out == ["__name__", "cluster", "instance", f"warning: store {addr}: names are partial"], out
            out, _ = run(addr, "values", "instance", '{__name__="up"}')
            assert out == ["a", "b"], out
            _, err = run(addr, "values", "nope", ok=False)
            assert f"store {addr}: LabelValues" in err and "NotFound: no label nope" in err, err

        def t_status():
            _, err = run(addr, "series", '{__name__="other"}', ok=False)
            assert f"store {addr}: Series" in err and "InvalidArgument: bad matcher set: 'other'" in err, err

        def t_abort_midstream():
            out, err = run(addr, "series", '{__name__="abort"}', ok=False)
            assert out and out[0].startswith('abort{i="0"} chunks=1 samples=10'), out
            assert "Unavailable: store went away" in err, err

        def t_deadline():
            t0 = time.time()
            _, err = run("--timeout", "300", addr, "series", '{__name__="slow"}', ok=False)
            assert "DeadlineExceeded" in err and f"store {addr}" in err, err
            assert time.time() - t0 < 1.8, time.time() - t0

        def t_many():
            out, _ = run(addr, "series", '{__name__="many"}')
            assert len(out) == 5000, len(out)
            assert out[-1].startswith('many{i="04999"} chunks=2 samples=240'), out[-1]

        def t_compressed_request():
            # grpcio has no snappy decompressor: the call must fail cleanly with the server's status
            _, err = run("--compress", addr, "series", '{__name__="up"}', ok=False)
            assert f"store {addr}: Series" in err, err

        def t_unreachable():
            s = __import__("socket").socket()
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
            s.close()
            _, err = run(f"127.0.0.1:{free}", "info", ok=False)
            assert "Unavailable" in err and f"127.0.0.1:{free}" in err and "refused" in err, err

        for name, fn in (("info", t_info), ("series_split_frames_and_warnings", t_series),
                         ("series_trimmed", t_series_trimmed), ("label_names_values", t_labels),
                         ("server_status", t_status), ("server_aborts_midstream", t_abort_midstream),
                         ("deadline", t_deadline), ("stream_5000_series", t_many),
                         ("compressed_request_refused_cleanly", t_compressed_request),
                         ("unreachable_endpoint", t_unreachable)):
            check(name, fn)
    finally:
        server.stop(grace=None)
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
