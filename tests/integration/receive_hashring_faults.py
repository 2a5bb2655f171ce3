"""Hashring faults and the replication service seen from outside.

- thanos.WriteableStore/RemoteWrite from python3-grpcio (another gRPC stack, as a Thanos router would
  call it): a WriteRequest{timeseries = 1, tenant = 2, replica = 3} is stored under its tenant and
  answered with an empty WriteResponse; a conflicting sample is AlreadyExists, a garbage body or a
  missing tenant InvalidArgument, a replica above the replication factor InvalidArgument.
- A peer that hangs (accepts the connection, never answers): with replication factor 3 and the other
  two receivers up, writes succeed by quorum well within the forward timeout; with two hanging peers
  they fail with 503 within the forward timeout (plus slack), never hanging the caller.
"""
import os
import socket
import struct
import sys
import tempfile
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, free_port, wait_until  # noqa: E402
from lib_hashring import cluster, write_ring  # noqa: E402
from lib_receive import Receiver, field, timeseries, varint  # noqa: E402
from lib_receive import write_request as rw_body  # noqa: E402

H = Harness("receive_hashring_faults")
tmp = tempfile.mkdtemp(prefix="strata-hashring-faults-")
started = []


def write_request(tenant, series, replica=0):
    body = b"".join(field(1, timeseries(ls, ss)) for ls, ss in series)
    if tenant:
        body += field(2, tenant.encode())
    if replica:
        body += varint(3 << 3) + varint(replica)
    return body


def remote_write(port, body):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = ch.unary_unary("/thanos.WriteableStore/RemoteWrite", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    try:
        resp = call(body, timeout=10)
        return grpc.StatusCode.OK, resp
    except grpc.RpcError as e:
        return e.code(), e.details()
    finally:
        ch.close()


class HangingPeer:
    """Accepts connections and never reads or answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)


try:
    # ---- the service, from grpcio ----
    r = Receiver(tmp, tsdb=os.path.join(tmp, "single"), name="single").start()
    started.append(r)
    now = int(time.time() * 1000)
    st, resp = remote_write(r.grpc, write_request("grpc-tenant", [([("__name__", "g"), ("a", "1")], [(now, 1.0)])]))
    H.result("remote_write_ok", st == grpc.StatusCode.OK and resp == b"", f"{st} {resp!r}")
    lines = r.series('{__name__="g"}')
    H.result("stored_under_its_tenant", len(lines) == 1 and 'tenant_id="grpc-tenant"' in lines[0], lines)
    st, msg = remote_write(r.grpc, write_request("grpc-tenant", [([("__name__", "g"), ("a", "1")], [(now, 2.0)])]))
    H.result("conflict_is_already_exists", st == grpc.StatusCode.ALREADY_EXISTS, f"{st} {msg}")
    st, msg = remote_write(r.grpc, b"\x0a\xff\xff\xff")
    H.result("garbage_is_invalid_argument", st == grpc.StatusCode.INVALID_ARGUMENT, f"{st} {msg}")
    st, msg = remote_write(r.grpc, write_request("", [([("__name__", "g"), ("a", "2")], [(now, 1.0)])]))
    H.result("missing_tenant_is_invalid_argument", st == grpc.StatusCode.INVALID_ARGUMENT, f"{st} {msg}")
    r.stop()
    started.remove(r)

    # ---- hanging peers ----
    hang1, hang2 = HangingPeer(), HangingPeer()
    ring, nodes = cluster(tmp, 2, algo="ketama", rf=3, timeout="2s", router_only=True)
    router, nodes = nodes[0], nodes[1:]
    eps = [f"127.0.0.1:{n.grpc}" for n in nodes]
    write_ring(ring, [("ketama", eps + [f"127.0.0.1:{hang1.port}"])])
    for n in nodes + [router]:
        n.start()
        started.append(n)
    st, msg = remote_write(nodes[0].grpc, write_request("t", [([("__name__", "g"), ("a", "1")], [(now, 1.0)])], 4))
    H.result("replica_above_rf_is_invalid_argument", st == grpc.StatusCode.INVALID_ARGUMENT and "replica" in msg,
             f"{st} {msg}")
    times, codes = [], []
    for k in range(6):
        body = rw_body([([("__name__", "h"), ("i", str(i))], [(now + k * 1000, 1.0)]) for i in range(100)])
        t0 = time.time()
        st, txt = nodes[0].post(body)
        times.append(time.time() - t0)
        codes.append(st)
    print(f"info: one hanging peer of three, RF 3: statuses {codes}, seconds {[round(t, 3) for t in times]}")
    H.result("one_hanging_peer_quorum_succeeds", all(c == 200 for c in codes), codes)
    H.result("one_hanging_peer_does_not_slow_writes", max(times) < 1.5, f"slowest write {max(times):.3f}s "
             "(forward timeout 2s)")
    lines = nodes[1].series('{__name__="h"}')
    H.result("other_replica_has_the_writes", len(lines) == 100, f"{len(lines)} series on the second node")
    # the same through a router-only receiver (its own one-pass forwarding path)
    times, codes = [], []
    for k in range(6):
        body = rw_body([([("__name__", "hr"), ("i", str(i))], [(now + k * 1000, 1.0)]) for i in range(100)])
        t0 = time.time()
        st, txt = router.post(body)
        times.append(time.time() - t0)
        codes.append(st)
    print(f"info: router only, one hanging peer of three, RF 3: statuses {codes}, seconds "
          f"{[round(t, 3) for t in times]}")
    H.result("router_only_one_hanging_peer_quorum_succeeds", all(c == 200 for c in codes), codes)
    H.result("router_only_one_hanging_peer_does_not_slow_writes", max(times) < 1.5, f"slowest {max(times):.3f}s")
    lines = [n.series('{__name__="hr"}') for n in nodes]
    H.result("router_only_both_live_replicas_have_the_writes", [len(x) for x in lines] == [100, 100],
             [len(x) for x in lines])
    # replication factor 1 (forwards made from the HTTP worker itself): the share of the hanging peer
    # fails with 503 within the forward timeout; the other share is stored
    ing = Receiver(tmp, tsdb=os.path.join(tmp, "tsdb-ingestor"), name="ingestor")  # no hashring: ingestor only
    ing.start()
    started.append(ing)
    ring1 = os.path.join(tmp, "ring-rf1.json")
    write_ring(ring1, [("hashmod", [f"127.0.0.1:{ing.grpc}", f"127.0.0.1:{hang2.port}"])])
    r1 = Receiver(tmp, tsdb=os.path.join(tmp, "tsdb-router1"), name="router1")
    r1.args = [f"--receive.hashrings-file={ring1}", "--receive.replication-factor=1",
               "--receive-forward-timeout=2s"]
    r1.start()
    started.append(r1)
    body = rw_body([([("__name__", "h1"), ("i", str(i))], [(now, 1.0)]) for i in range(100)])
    t0 = time.time()
    st, txt = r1.post(body)
    dt = time.time() - t0
    print(f"info: router only, RF 1, one hanging peer of two: {st} in {dt:.3f}s: {txt.strip()[:200]}")
    H.result("router_only_rf1_hanging_peer_fails_503", st == 503 and "not written" in txt, f"{st} {txt}")
    H.result("router_only_rf1_hanging_peer_bounded_by_timeout", dt < 2 + 1.5, f"{dt:.3f}s")
    n1 = len(ing.series('{__name__="h1"}'))
    H.result("router_only_rf1_live_share_stored", 20 < n1 < 80, f"{n1} of 100 series on the live peer")

    write_ring(ring, [("ketama", eps[:1] + [f"127.0.0.1:{hang1.port}", f"127.0.0.1:{hang2.port}"])])
    wait_until(lambda: "hashring config applied" in nodes[0].log_text(), nodes[0].proc, "hashring switch", 20)
    times, codes = [], []
    for k in range(3):
        body = rw_body([([("__name__", "h2"), ("i", str(i))], [(now + k * 1000, 1.0)]) for i in range(100)])
        t0 = time.time()
        st, txt = nodes[0].post(body)
        times.append(time.time() - t0)
        codes.append(st)
    print(f"info: two hanging peers of three, RF 3: statuses {codes}, seconds {[round(t, 3) for t in times]}")
    H.result("two_hanging_peers_fail_503", all(c == 503 for c in codes), codes)
    H.result("two_hanging_peers_bounded_by_timeout", max(times) < 2 + 1.5, f"slowest write {max(times):.3f}s")
finally:
    for n in started:
        if n.proc and n.proc.poll() is None:
            n.stop()
sys.exit(1 if H.failed else 0)
