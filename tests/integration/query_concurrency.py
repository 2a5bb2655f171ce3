#!/usr/bin/env python3
"""--query.max-concurrent is how many queries the querier runs at once, whatever the number of CPUs.

A python3-grpcio StoreAPI answers every Series call after 1 s (a slow bucket, a far-away sidecar) and counts
the calls in flight. Eight instant queries sent at once to a querier with --query.max-concurrent=8 all reach
the store together (a query waiting on its stores holds its thread, so a pool sized to the CPUs ran two at a
time on a 2-core machine and took four times as long); with --query.max-concurrent=3 never more than three
do, the rest wait in the queue and still succeed. /-/healthy and /api/v1/labels answer while the query slots
are all taken.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_ready  # noqa: E402
from lib_receive import BIN, field, varint  # noqa: E402

H = Harness("query_concurrency")
tmp = tempfile.mkdtemp(prefix="strata-qconc-")
procs = []
DELAY_S = 1.0


class SlowStore:
    """A StoreAPI whose Series calls answer nothing after DELAY_S; records the most calls in flight."""

    def __init__(self):
        import grpc
        from concurrent import futures
        self.mu = threading.Lock()
        self.inflight = 0
        self.peak = 0
        self.calls = 0
        store_info = varint(1 << 3) + varint(1) + varint(2 << 3) + varint(1 << 60)
        info = field(2, b"store") + field(3, store_info)

        def series(req, ctx):
            with self.mu:
                self.inflight += 1
                self.calls += 1
                self.peak = max(self.peak, self.inflight)
            time.sleep(DELAY_S)
            with self.mu:
                self.inflight -= 1
            return iter(())

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("thanos.Store", {
                "Series": grpc.unary_stream_rpc_method_handler(series),
                "LabelNames": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b""),
                "LabelValues": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"")}),
            grpc.method_handlers_generic_handler("thanos.info.Info", {
                "Info": grpc.unary_unary_rpc_method_handler(lambda req, ctx: info)})))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def reset(self):
        with self.mu:
            self.peak = self.calls = 0


def querier(name, extra):
    hp = free_port()
    log = open(os.path.join(tmp, f"{name}.log"), "a")
    p = subprocess.Popen([BIN, "query", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{free_port()}",
                          f"--endpoint=127.0.0.1:{store.port}", *extra], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    wait_ready(hp, p, name)
    return hp


def get(port, path, params=None):
    url = f"http://127.0.0.1:{port}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, json.load(r) if path.startswith("/api") else r.read()


def burst(port, n):
    """n instant queries at once; (statuses, seconds for all)"""
    out = [None] * n

    def one(i):
        try:
            out[i] = get(port, "/api/v1/query", {"query": f"slow_metric{{i=\"{i}\"}}", "time": "600"})[0]
        except Exception as e:  # noqa: BLE001 - recorded as the status
            out[i] = repr(e)
    t0 = time.monotonic()
    ths = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(90)
    return out, time.monotonic() - t0


try:
    store = SlowStore()
    wide = querier("wide", ["--query.max-concurrent=8"])

    def eight_at_once():
        store.reset()
        st, took = burst(wide, 8)
        assert st == [200] * 8, st
        assert store.peak == 8, (store.peak, store.calls)
        assert took < 3 * DELAY_S, took  # two at a time would take 4 s
    H.check("max_concurrent_8_runs_8_queries_at_once", eight_at_once)

    narrow = querier("narrow", ["--query.max-concurrent=3"])

    def three_at_a_time():
        store.reset()
        health = []

        def side():  # other endpoints answer while every query slot waits on the store
            time.sleep(0.3)
            t0 = time.monotonic()
            health.append((get(narrow, "/-/healthy")[0], get(narrow, "/api/v1/labels")[0],
                           time.monotonic() - t0))
        th = threading.Thread(target=side)
        th.start()
        st, took = burst(narrow, 7)
        th.join(30)
        assert st == [200] * 7, st
        assert store.peak == 3, (store.peak, store.calls)
        assert took >= 3 * DELAY_S - 0.1, took  # 3 + 3 + 1: three rounds
        assert health and health[0][:2] == (200, 200) and health[0][2] < DELAY_S, health
    H.check("max_concurrent_3_queues_the_rest", three_at_a_time)
except Exception as e:  # noqa: BLE001 - setup failures are test failures
    H.result("setup", False, f"{type(e).__name__}: {e}")
finally:
    for p in procs:
        stop(p)
    if "store" in globals():
        store.server.stop(0)
sys.exit(1 if H.failed else 0)
