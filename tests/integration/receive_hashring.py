"""Receivers as a cluster: three `strata receive` in router+ingestor mode on one ketama hashring with
replication factor 3, a real Prometheus 2.42 remote-writing (scraping itself and the receivers every
second) into one of them, and the C load generator writing a second tenant with every acknowledged
request logged.

- Every series is on all three receivers (each with its own --label receive_replica), and
  `strata query --query.replica-label=receive_replica` over the three answers like that Prometheus.
- One receiver killed with SIGKILL: writes keep succeeding (quorum 2 of 3), Prometheus fails no
  samples, queries still answer; restarted, it replays its WAL and the answers are still exactly
  Prometheus's.
- Two killed: a write gets 503 (retryable) and Prometheus retries; after both restart nothing is
  missing: the answers equal Prometheus's again, and every request the load generator saw
  acknowledged is on at least two of the three receivers (quorum), no sample twice on any.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, stop, wait_until  # noqa: E402
from lib_hashring import cluster, metric_value, norm, prometheus, query, querier  # noqa: E402
from lib_receive import LOADGEN, loadgen, write_request  # noqa: E402

H = Harness("receive_hashring")
tmp = tempfile.mkdtemp(prefix="strata-hashring-")
procs = []
ring, nodes = cluster(tmp, 3, algo="ketama", rf=3)
for n in nodes:
    n.start()
STRIP = ("prom", "receive_replica", "tenant_id")
QUERIES = (("up", "up"), ("head_series", "prometheus_tsdb_head_series"),
           ("rate", "rate(prometheus_http_requests_total[10s])"),
           ("sum_by_job", "sum by (job) (scrape_samples_scraped)"),
           ("count_all", 'count({__name__=~"prometheus_.*", job="prometheus"})'))


def compare(tag, pport, qport, t, span):
    for name, q in QUERIES:
        a = norm(query(pport, "/api/v1/query_range", {"query": q, "start": f"{t - span:.3f}", "end": f"{t:.3f}",
                                                      "step": "1"})["result"], ())
        b = norm(query(qport, "/api/v1/query_range", {"query": q, "start": f"{t - span:.3f}", "end": f"{t:.3f}",
                                                      "step": "1"})["result"], STRIP)
        H.result(f"{tag}_{name}", a == b and len(a) > 0, f"{len(a)} vs {len(b)} series; first differs: "
                 f"{next(((x, y) for x, y in zip(a, b) if x != y), None)}")


def caught_up(qport, proc, within=3):
    def ok():
        d = query(qport, "/api/v1/query", {"query": 'timestamp(up{job="prometheus"})'})
        return d["result"] and float(d["result"][0]["value"][1]) >= time.time() - within
    wait_until(ok, proc, "remote write catching up", timeout=40)


def prom_failed(pport):
    d = query(pport, "/api/v1/query", {"query": "sum(prometheus_remote_storage_samples_failed_total)"})
    return float(d["result"][0]["value"][1]) if d["result"] else -1


try:
    p, pport = prometheus(tmp, nodes[0].url, [n.http for n in nodes])
    procs.append(p)
    qp, qport = querier(tmp, [n.grpc for n in nodes])
    procs.append(qp)
    ack = os.path.join(tmp, "ack.log")
    start = (int(time.time()) - 1800) * 1000
    lg = subprocess.Popen([LOADGEN, "write", f"--url={nodes[0].url}", "--tenant=load", "--series=300",
                           "--batch=100", "--rounds=1000000", f"--start={start}", "--interval=1000",
                           "--concurrency=2", "--retry", f"--ack-log={ack}"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    procs.append(lg)
    time.sleep(12)
    caught_up(qport, qp)

    # every series on all three receivers
    sets = []
    for n in nodes:
        lines = n.series('{__name__=~"prometheus_tsdb_.*",tenant_id="default-tenant"}')
        sets.append(sorted(re.sub(r'receive_replica="r\d",?\s*', "", ln.split(" chunks=")[0]) for ln in lines))
    H.result("every_series_on_every_replica", sets[0] and sets[0] == sets[1] == sets[2],
             f"{[len(s) for s in sets]} series")
    t = time.time() - 4
    compare("all_up", pport, qport, t, 8)

    # one receiver killed: quorum 2 of 3 still writes
    m0 = nodes[0].metrics()
    nodes[2].kill9()
    time.sleep(6)
    body = write_request([([("__name__", "probe"), ("i", str(i))], [(int(time.time() * 1000), 1.0)])
                          for i in range(50)])
    st, txt = nodes[0].post(body)
    H.result("one_down_write_succeeds", st == 200, f"{st} {txt}")
    caught_up(qport, qp)
    H.result("one_down_prometheus_fails_nothing", prom_failed(pport) == 0, f"failed={prom_failed(pport)}")
    t = time.time() - 3
    compare("one_down", pport, qport, t, 5)
    m1 = nodes[0].metrics()
    H.result("forward_errors_counted", metric_value(m1, "thanos_receive_forward_requests_total", result="error") >
             metric_value(m0, "thanos_receive_forward_requests_total", result="error"), "no forward error counted")
    nodes[2].start()
    replays = re.findall(r"wal_replay_seconds=([0-9.]+)", nodes[2].log_text())
    H.result("restarted_node_replays_wal", len(replays) >= 3, f"replay lines: {replays}")
    time.sleep(3)
    caught_up(qport, qp)
    t = time.time() - 3
    compare("after_restart", pport, qport, t, 20)

    # two killed: no quorum, 503 (retryable); Prometheus retries
    nodes[1].kill9()
    nodes[2].kill9()
    time.sleep(1)
    st, txt = nodes[0].post(body)
    H.result("two_down_write_is_503", st == 503 and "quorum" in txt, f"{st} {txt}")
    time.sleep(4)
    nodes[1].start()
    nodes[2].start()
    time.sleep(2)
    caught_up(qport, qp, within=2)
    H.result("two_down_prometheus_fails_nothing", prom_failed(pport) == 0, f"failed={prom_failed(pport)}")
    d = query(pport, "/api/v1/query", {"query": "sum(prometheus_remote_storage_samples_retried_total)"})
    retried = float(d["result"][0]["value"][1]) if d["result"] else 0
    H.result("prometheus_retried", retried > 0, "Prometheus retried nothing while two receivers were down")
    t = time.time() - 3
    compare("after_two_down", pport, qport, t, 30)

    lg.send_signal(signal.SIGTERM)
    out, _ = lg.communicate(timeout=60)
    H.result("loadgen_ran", lg.returncode == 0 and "samples=" in out, out)
    rc, out = loadgen("verify", "--grpc=" + ",".join(f"127.0.0.1:{n.grpc}" for n in nodes), f"--ack-log={ack}",
                      "--series=300", "--batch=100", f"--start={start}", "--interval=1000", "--tenant=load",
                      "--min-copies=2")
    H.result("every_acknowledged_sample_on_a_quorum", rc == 0 and "verify: ok" in out, out)
    print(f"info: {out.strip()}")
finally:
    for pr in procs:
        stop(pr)
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            n.stop()
sys.exit(1 if H.failed else 0)
