"""Helpers for the hashring tests (tests/run skips lib* files): a cluster of `strata receive` processes
on free 127.0.0.1 ports sharing one hashring file, and Prometheus remote-writing into one of them.
"""
import json
import os
import subprocess
import urllib.parse
import urllib.request

from lib_harness import free_port, wait_ready
from lib_receive import Receiver


def write_ring(path, rings):
    """rings: [(algorithm, [grpc address...])] or a ready list of dicts; written atomically."""
    doc = []
    for r in rings:
        if isinstance(r, dict):
            doc.append(r)
        else:
            algo, eps = r
            doc.append({"hashring": "default", "algorithm": algo, "endpoints": list(eps)})
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def cluster(tmp, n, algo="ketama", rf=3, extra=(), router_only=False, ring_nodes=None, ext=None, timeout="5s"):
    """n receivers (each --label receive_replica="rI"); the ring file lists ring_nodes of them (default
    all). With router_only, one more receiver without --receive.local-endpoint is returned first.
    Returns (ring_file, [Receiver...]) not started."""
    ring = os.path.join(tmp, "hashring.json")
    nodes = []
    for i in range(n):
        r = Receiver(tmp, tsdb=os.path.join(tmp, f"tsdb{i}"), name=f"receive{i}")
        r.args = [f"--receive.hashrings-file={ring}", f"--receive.local-endpoint=127.0.0.1:{r.grpc}",
                  f"--receive.replication-factor={rf}", f'--label=receive_replica="r{i}"',
                  "--receive.hashrings-file-refresh-interval=1s", f"--receive-forward-timeout={timeout}"] + list(extra)
        nodes.append(r)
    eps = [f"127.0.0.1:{r.grpc}" for r in nodes[:ring_nodes or n]]
    doc = {"hashring": "default", "algorithm": algo, "endpoints": eps}
    if ext:
        doc["external_labels"] = ext
    write_ring(ring, [doc])
    if router_only:
        r = Receiver(tmp, tsdb=os.path.join(tmp, "tsdb-router"), name="router")
        r.args = [f"--receive.hashrings-file={ring}", f"--receive.replication-factor={rf}",
                  "--receive.hashrings-file-refresh-interval=1s", f"--receive-forward-timeout={timeout}"] + list(extra)
        nodes.insert(0, r)
    return ring, nodes


def metric_value(text, name, **labels):
    """Sum of the samples of metric `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, val = line.rpartition(" ")
        mname = head.split("{", 1)[0]
        if mname != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(val)
    return total


def prometheus(tmp, url, scrape_ports, name="prometheus"):
    """A Prometheus 2.42 scraping itself and scrape_ports every second, remote-writing to url."""
    port = free_port()
    cfg = os.path.join(tmp, f"{name}.yml")
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in scrape_ports)
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  external_labels: {{prom: p1}}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: strata
    static_configs: [{{targets: [{targets}]}}]
remote_write:
  - url: {url}
    queue_config: {{batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 2s}}
""")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    p = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/{name}-data",
                          f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p, name)
    return p, port


def query(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    return json.load(urllib.request.urlopen(url, timeout=60))["data"]


def norm(result, strip):
    out = []
    for s in result:
        m = {k: v for k, v in s["metric"].items() if k not in strip}
        out.append((json.dumps(m, sort_keys=True), json.dumps(s.get("value") or s.get("values"))))
    return sorted(out)


def querier(tmp, grpc_ports, replica_label="receive_replica", name="query"):
    """`strata query` over the given gRPC ports deduplicating by replica_label; (proc, http port)."""
    from lib_receive import BIN
    port = free_port()
    log = open(os.path.join(tmp, f"{name}.log"), "a")
    args = [BIN, "query", f"--http-address=127.0.0.1:{port}", f"--grpc-address=127.0.0.1:{free_port()}",
            f"--query.replica-label={replica_label}"] + [f"--endpoint=127.0.0.1:{p}" for p in grpc_ports]
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p, name)
    return p, port
