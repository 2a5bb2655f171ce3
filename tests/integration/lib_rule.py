"""Helpers for the ruler's integration tests: a scrape target whose values the test sets, a Prometheus 2.42
scraping it with a strata sidecar next to it, queriers, the ruler, and Alertmanager through scripts/alertmanager.
"""
import http.server
import json
import os
import subprocess
import threading
import urllib.parse
import urllib.request

from lib_harness import free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))


class Target:
    """An HTTP /metrics target serving gauges the test sets: target.set('name{a="b"}', 1.5)."""

    def __init__(self):
        self.values = {}
        self.lock = threading.Lock()
        tgt = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with tgt.lock:
                    body = "".join(f"{k} {v}\n" for k, v in tgt.values.items()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def set(self, k, v):
        with self.lock:
            self.values[k] = v

    def close(self):
        self.srv.shutdown()


class Procs:
    """Processes the test started, stopped by PID at the end."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, args):
        log = open(os.path.join(self.tmp, f"{name}.log"), "a")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            stop(p)


def prometheus(procs, tmp, target_port, rule_files=(), interval="1s", eval_interval="2s", am_url=None):
    port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    rf = "".join(f"\n  - {f}" for f in rule_files)
    alerting = ""
    if am_url:
        alerting = f"\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am_url.split('//')[1]}']}}]\n"
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: {interval}
  evaluation_interval: {eval_interval}
  external_labels: {{prom: p1}}
rule_files:{rf if rf else ' []'}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]
{alerting}""")
    p = procs.start("prometheus", ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                                   f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.min-block-duration=2h",
                                   "--storage.tsdb.max-block-duration=2h", "--web.enable-lifecycle"])
    wait_ready(port, p, "prometheus", 60)
    return p, port


def sidecar(procs, tmp, prom_port):
    g, h = free_port(), free_port()
    p = procs.start("sidecar", [BIN, "sidecar", f"--prometheus.url=http://127.0.0.1:{prom_port}",
                                f"--tsdb.path={tmp}/prom", f"--grpc-address=127.0.0.1:{g}",
                                f"--http-address=127.0.0.1:{h}"])
    wait_ready(h, p, "sidecar", 60)
    return p, g


def querier(procs, tmp, grpc_ports, name="query"):
    port = free_port()
    args = [BIN, "query", f"--http-address=127.0.0.1:{port}", f"--grpc-address=127.0.0.1:{free_port()}",
            "--query.replica-label=rule_replica"]
    args += [f"--endpoint=127.0.0.1:{p}" for p in grpc_ports]
    p = procs.start(name, args)
    wait_ready(port, p, name)
    return p, port


def ruler(procs, tmp, args, name="rule", http_port=None, grpc_port=None):
    http_port = http_port or free_port()
    grpc_port = grpc_port or free_port()
    p = procs.start(name, [BIN, "rule", f"--http-address=127.0.0.1:{http_port}", f"--grpc-address=127.0.0.1:{grpc_port}"]
                    + args)
    wait_ready(http_port, p, name)
    return p, http_port, grpc_port


def get(port, path, params=None, timeout=30):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    return json.load(urllib.request.urlopen(url, timeout=timeout))


def query(port, q, **params):
    params["query"] = q
    return get(port, "/api/v1/query", params)["data"]["result"]


def metric(port, name):
    """Sum of a metric's samples on /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    tot = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            tot += float(line.rsplit(" ", 1)[1])
    return tot


def alertmanager_start():
    out = subprocess.run([os.path.join(ROOT, "scripts", "alertmanager"), "start"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise RuntimeError("scripts/alertmanager start failed: " + out.stderr)
    env = {}
    for line in out.stdout.splitlines():
        k, v = line.replace("export ", "").split("=", 1)
        env[k] = v
    return env


def alertmanager_stop(env):
    if env:
        subprocess.run([os.path.join(ROOT, "scripts", "alertmanager"), "stop"], env=dict(os.environ, **env), timeout=30)


__all__ = ["Target", "Procs", "prometheus", "sidecar", "querier", "ruler", "get", "query", "metric",
           "alertmanager_start", "alertmanager_stop", "wait_until", "free_port", "BIN"]
