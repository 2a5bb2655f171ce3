"""A real Prometheus 2.42 remote-writes what it scrapes (itself and the receiver, every second) to
`strata receive` (tenant "team-a"); after a while, instant and range queries through
`strata query --endpoint=<receiver gRPC>` equal the same queries on that Prometheus, series for series
and value for value — the received series carry Prometheus's external label, the receiver's --label
and tenant_id=team-a, which are compared and then set aside. Metadata sent by Prometheus is accepted.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness, free_port, stop, wait_ready, wait_until  # noqa: E402
from lib_receive import Receiver, query_proc  # noqa: E402

H = Harness("receive_prometheus")
tmp = tempfile.mkdtemp(prefix="strata-receive-prom-")
procs = []
# The tenant comes from --receive.default-tenant-id: the Debian Prometheus 2.42 does not send the
# remote_write `headers` of its config (checked with a plain HTTP server), so THANOS-TENANT cannot be
# set from there; the header path is covered by receive_status.py.
r = Receiver(tmp, args=['--label=receive_replica="r0"', "--receive.default-tenant-id=team-a"]).start()
pport = free_port()
cfg = os.path.join(tmp, "prometheus.yml")
with open(cfg, "w") as f:
    f.write(f"""global:
  scrape_interval: 1s
  external_labels: {{prom: p1}}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{pport}']}}]
  - job_name: strata
    static_configs: [{{targets: ['127.0.0.1:{r.http}']}}]
remote_write:
  - url: {r.url}
    queue_config: {{batch_send_deadline: 500ms, min_backoff: 50ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 2s}}
""")


def query(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    return json.load(urllib.request.urlopen(url, timeout=60))["data"]


def norm(result, strip):
    out = []
    for s in result:
        m = {k: v for k, v in s["metric"].items() if k not in strip}
        out.append((json.dumps(m, sort_keys=True), json.dumps(s.get("value") or s.get("values"))))
    return sorted(out)


try:
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    p = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                          f"--web.listen-address=127.0.0.1:{pport}"], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    wait_ready(pport, p, "prometheus")
    qp, qport = query_proc(tmp, [r.grpc])
    procs.append(qp)
    time.sleep(20)
    # compare up to a time the receiver has certainly received: its newest `up` sample minus a margin
    def caught_up():
        d = query(qport, "/api/v1/query", {"query": 'timestamp(up{job="prometheus"})'})
        return d["result"] and float(d["result"][0]["value"][1]) >= time.time() - 3
    wait_until(caught_up, qp, "remote write catching up", timeout=30)
    t = time.time() - 4
    strip = ("prom", "receive_replica", "tenant_id")
    d = query(qport, "/api/v1/query", {"query": 'up{job="prometheus"}', "time": f"{t:.3f}"})
    lbl = d["result"][0]["metric"] if d["result"] else {}
    H.result("received_series_labels", lbl.get("tenant_id") == "team-a" and lbl.get("prom") == "p1" and
             lbl.get("receive_replica") == "r0", lbl)
    for name, q in (("up", "up"), ("tsdb_head_series", "prometheus_tsdb_head_series"),
                    ("requests_total", 'prometheus_http_requests_total{handler="/metrics"}'),
                    ("rate", "rate(prometheus_http_requests_total[10s])"),
                    ("sum_by_job", "sum by (job) (scrape_samples_scraped)"),
                    ("receiver_samples", 'prometheus_tsdb_head_samples_appended_total{job="strata"}'),
                    ("count_all", 'count({__name__=~"prometheus_.*", job="prometheus"})')):
        a = norm(query(pport, "/api/v1/query", {"query": q, "time": f"{t:.3f}"})["result"], ())
        b = norm(query(qport, "/api/v1/query", {"query": q, "time": f"{t:.3f}"})["result"], strip)
        H.result(f"instant_{name}", a == b and len(a) > 0, f"prometheus {a[:2]} ... strata {b[:2]} ({len(a)} vs {len(b)})")
        a = norm(query(pport, "/api/v1/query_range", {"query": q, "start": f"{t - 15:.3f}", "end": f"{t:.3f}",
                                                      "step": "1"})["result"], ())
        b = norm(query(qport, "/api/v1/query_range", {"query": q, "start": f"{t - 15:.3f}", "end": f"{t:.3f}",
                                                      "step": "1"})["result"], strip)
        H.result(f"range_{name}", a == b and len(a) > 0, f"{len(a)} vs {len(b)} series; first differs: "
                 f"{next(((x, y) for x, y in zip(a, b) if x != y), None)}")
    m = r.metrics()
    H.result("no_rejections", 'code="409"' not in m and 'code="400"' not in m, "rejected writes in metrics")
finally:
    for p in procs:
        stop(p)
    rc = r.stop()
H.result("clean_exit", rc == 0, f"exit status {rc}")
sys.exit(1 if H.failed else 0)
