"""Hashring routing by the numbers, with real processes and the C load generator.

- Router only: a receiver without --receive.local-endpoint in front of two ingestors, hashmod,
  replication factor 1: 100k series each land on exactly one ingestor (the two hold 100k together and
  every acknowledged sample is on one of them), the split is within a few % of even, and the router
  itself stores nothing; the ingestors' series carry the hashring's external_labels.
- Hashring file edited to add a fourth receiver while writes run, once with ketama and once with
  hashmod (replication factor 1): each receiver goes not ready, flushes its heads into blocks and
  takes writes again; placement changes; no acknowledged sample is lost; ketama moves at most ~1/4 of
  the series (+5%), hashmod most of them (both printed).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, wait_until  # noqa: E402
from lib_hashring import cluster, metric_value, write_ring  # noqa: E402
from lib_receive import LOADGEN, loadgen  # noqa: E402

H = Harness("receive_hashring_change")
SERIES = int(os.environ.get("HASHRING_TEST_SERIES", "100000"))


def stop_all(nodes):
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            n.stop()


def owners(nodes, sel='{__name__=~"rw_metric_.*",tenant_id="load"}'):
    """series (pod label) -> [(node index, first, last)]"""
    out = {}
    for k, n in enumerate(nodes):
        for line in n.series(sel):
            m = re.search(r'pod="([^"]+)".* first=(\d+) last=(\d+)', line)
            if m:
                out.setdefault(m.group(1), []).append((k, int(m.group(2)), int(m.group(3))))
    return out


# ---- router only, hashmod, RF 1, 100k series ----
tmp = tempfile.mkdtemp(prefix="strata-hashring-router-")
ring, nodes = cluster(tmp, 2, algo="hashmod", rf=1, router_only=True, ext={"ring": "edge"})
router, ingestors = nodes[0], nodes[1:]
try:
    for n in nodes:
        n.start()
    ack = os.path.join(tmp, "ack.log")
    start = (int(time.time()) - 600) * 1000
    rc, out = loadgen("write", f"--url={router.url}", "--tenant=load", f"--series={SERIES}", "--batch=2000",
                      "--rounds=2", f"--start={start}", "--interval=15000", "--concurrency=4", "--retry",
                      f"--ack-log={ack}")
    H.result("router_writes", rc == 0 and f"samples={2 * SERIES}" in out, out)
    print(f"info: through the router: {out.strip()}")
    def heads_now():
        return [metric_value(n.metrics(), "prometheus_tsdb_head_series", tenant="load") for n in ingestors]
    try:  # the gauges are refreshed every second
        wait_until(lambda: sum(heads_now()) >= SERIES, None, "head series gauges", timeout=10)
    except RuntimeError:
        pass
    heads = heads_now()
    H.result("each_series_once", sum(heads) == SERIES, f"head series {heads}, want {SERIES} in total")
    # the router hashes labels off the wire, the ingestors from decoded labels: had they disagreed on
    # a series' place, an ingestor would have forwarded it on
    fwd = [metric_value(n.metrics(), "thanos_receive_forward_requests_total") for n in ingestors]
    H.result("router_and_ingestors_agree_on_placement", fwd == [0, 0], f"ingestors forwarded {fwd} batches")
    share = [h / SERIES for h in heads]
    print(f"info: hashmod split over two ingestors: {heads} ({share[0]:.3f} / {share[1]:.3f})")
    H.result("split_even", all(abs(s - 0.5) < 0.02 for s in share), f"split {share}")
    rc, out = loadgen("verify", "--grpc=" + ",".join(f"127.0.0.1:{n.grpc}" for n in ingestors), f"--ack-log={ack}",
                      f"--series={SERIES}", "--batch=2000", f"--start={start}", "--interval=15000",
                      "--tenant=load", "--min-copies=1")
    H.result("every_acknowledged_sample_stored", rc == 0, out)
    lines = ingestors[0].series('{__name__="rw_metric_0",tenant_id="load"}')
    H.result("hashring_external_labels", lines and all('ring="edge"' in ln for ln in lines), lines[:2])
    H.result("router_stores_nothing", not os.path.exists(os.path.join(router.tsdb, "load")) and
             re.search(r"mode=router$", router.log_text(), re.M), "the router has a TSDB for the tenant or wrong mode")
finally:
    stop_all(nodes)

# ---- a fourth node joins while writes run ----
N2 = max(SERIES // 20, 2000)
moved = {}
for algo in ("ketama", "hashmod"):
    tmp = tempfile.mkdtemp(prefix=f"strata-hashring-{algo}-")
    ring, nodes = cluster(tmp, 4, algo=algo, rf=1, ring_nodes=3)
    try:
        for n in nodes:
            n.start()
        ack = os.path.join(tmp, "ack.log")
        start = (int(time.time()) - 1200) * 1000
        lg = subprocess.Popen([LOADGEN, "write", f"--url={nodes[0].url}", "--tenant=load", f"--series={N2}",
                               "--batch=500", "--rounds=1000000", f"--start={start}", "--interval=1000",
                               "--concurrency=2", "--retry", f"--ack-log={ack}"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        time.sleep(3)
        hash0 = metric_value(nodes[0].metrics(), "thanos_receive_config_hash")
        write_ring(ring, [(algo, [f"127.0.0.1:{n.grpc}" for n in nodes])])
        t_change = time.time()

        def switched():
            return all("hashring config applied" in n.log_text() for n in nodes)
        wait_until(switched, None, "every receiver switching hashrings", timeout=30)
        print(f"info: {algo}: every receiver switched {time.time() - t_change:.1f}s after the file changed")
        time.sleep(3)
        lg.send_signal(signal.SIGTERM)
        out, _ = lg.communicate(timeout=60)
        H.result(f"{algo}_writes_ran", lg.returncode == 0, out)
        print(f"info: {algo}: {out.strip()}")
        # one more round for every series, newer than everything: where each series lives now
        with open(ack) as f:
            last = max(int(line.split()[0]) for line in f if line.strip())
        rc, out = loadgen("write", f"--url={nodes[0].url}", "--tenant=load", f"--series={N2}", "--batch=500",
                          "--rounds=1", f"--start={start + (last + 5) * 1000}", "--interval=1000", "--retry")
        H.result(f"{algo}_final_round", rc == 0 and f"samples={N2}" in out, out)
        m = nodes[0].metrics()
        H.result(f"{algo}_config_hash_changed", metric_value(m, "thanos_receive_config_hash") not in (0, hash0) and
                 metric_value(m, "thanos_receive_hashrings_file_changes_total") == 1, "config hash metrics")
        flushed = all(re.search(r"switch_seconds=", n.log_text()) for n in nodes[:3])
        H.result(f"{algo}_flushed_and_ready", flushed and all(
            n.proc.poll() is None for n in nodes), "a receiver did not switch or died")
        rc, out = loadgen("verify", "--grpc=" + ",".join(f"127.0.0.1:{n.grpc}" for n in nodes), f"--ack-log={ack}",
                          f"--series={N2}", "--batch=500", f"--start={start}", "--interval=1000", "--tenant=load",
                          "--min-copies=1")
        H.result(f"{algo}_no_acknowledged_sample_lost", rc == 0, out)
        own = owners(nodes)
        nmoved = 0
        for pod, where in own.items():
            before = min(where, key=lambda w: w[1])[0]
            after = max(where, key=lambda w: w[2])[0]
            nmoved += before != after
        moved[algo] = nmoved / max(len(own), 1)
        on_new = sum(1 for where in own.values() if any(w[0] == 3 for w in where))
        H.result(f"{algo}_new_node_takes_series", on_new > 0, "the fourth receiver got nothing")
        print(f"info: {algo}: {nmoved} of {len(own)} series moved ({100 * moved[algo]:.1f}%) when a 4th node joined")
    finally:
        stop_all(nodes)
H.result("ketama_moves_about_a_quarter", moved.get("ketama", 1) <= 0.25 + 0.05, f"ketama moved {moved}")
H.result("hashmod_moves_most", moved.get("hashmod", 0) >= 0.5, f"hashmod moved {moved}")
sys.exit(1 if H.failed else 0)
