#!/usr/bin/python3
"""The Kubernetes layout of deploy/kubernetes run for real on 127.0.0.1: the receivers, the receive
router, the querier and the ruler pair with the args, hashring and rules of their manifests, against
Debian's Alertmanager with the manifest's alertmanager.yml (scripts/alertmanager).

What a pod would get is rewritten, nothing else: each pod's listen addresses become free 127.0.0.1
ports, $(NAME) its pod name, the cluster DNS names (<pod>.<service>.strata.svc.cluster.local,
dnssrv+ of a headless Service, a Service's name) the ports of the processes behind them, mounted
ConfigMaps and the bucket Secret files in a temporary directory (the bucket: FILESYSTEM), volumes
temporary directories. The example rules' intervals are shortened to 1s so the test is quick.

Proven: a write to the router reaches all three receivers (replication factor 3 over the hashring of
pod names, each receiver naming itself by --receive.local-endpoint) and the querier returns it once
(deduplicated on receive_replica) while dedup=false shows the three copies; both rulers record the
example rules through the querier (one series deduplicated on rule_replica, two without dedup); the
always-firing StrataWatchdog reaches Alertmanager once, without rule_replica; the reloader's
POST /-/reload is accepted. Prints PASS/FAIL lines.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, wait_ready, wait_until  # noqa: E402
from lib_receive import snappy_block, write_request  # noqa: E402
from lib_rule import Procs, alertmanager_start, alertmanager_stop  # noqa: E402

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
NS = "strata"
H = Harness("deploy_layout")


def docs():
    out = []
    for f in sorted(os.listdir(K8S)):
        if f.endswith(".yaml") and f != "kustomization.yaml":
            with open(os.path.join(K8S, f)) as fh:
                out += [d for d in yaml.safe_load_all(fh) if d]
    return out


DOCS = docs()


def by_name(kind, name):
    return next(d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


class Pod:
    """One pod of a workload: its container's args, its ports (by the flag's port number) and files."""

    def __init__(self, tmp, workload, name):
        self.name, self.w = name, workload
        spec = workload["spec"]["template"]["spec"]
        self.c = next(c for c in spec["containers"] if c["image"].split(":")[0] == "strata")
        self.ports = {p["containerPort"]: free_port() for p in self.c["ports"]}
        self.root = os.path.join(tmp, name)
        self.http = self.ports[listen(self.c["args"], "http-address")]
        self.grpc = self.ports[listen(self.c["args"], "grpc-address")]
        self.vols = {v["name"]: v for v in spec.get("volumes", [])}

    def args(self, dns, files):
        """The container's args for this pod: dns maps cluster names to 127.0.0.1 addresses, files
        (mount path -> {file: content}) overrides what the volumes would hold."""
        mounts = {}
        for m in self.c.get("volumeMounts", []):
            d = self.root + m["mountPath"]
            os.makedirs(d, exist_ok=True)
            v = self.vols.get(m["name"], {})
            content = files.get(m["mountPath"])
            if content is None and "configMap" in v:
                content = by_name("ConfigMap", v["configMap"]["name"])["data"]
            for k, val in (content or {}).items():
                with open(os.path.join(d, k), "w") as fh:
                    fh.write(val)
            mounts[m["mountPath"]] = d
        out = []
        for a in self.c["args"]:
            a = a.replace("$(NAME)", self.name)
            m = re.fullmatch(r"(--[\w.-]+=)0\.0\.0\.0:(\d+)", a)
            if m:
                a = f"{m.group(1)}127.0.0.1:{self.ports[int(m.group(2))]}"
            for mp, d in mounts.items():
                a = re.sub(rf"(^|=){re.escape(mp)}(/|$)", lambda mm: mm.group(1) + d + mm.group(2), a)
            a = dns(a)
            if a is not None:
                out.append(a)
        return out


def listen(args, flag):
    return next(int(a.rsplit(":", 1)[1]) for a in args if a.startswith(f"--{flag}="))


def post_write(port, series):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/receive", data=snappy_block(write_request(series)),
                                 headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                                          "X-Prometheus-Remote-Write-Version": "0.1.0"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        raise AssertionError(f"remote write: {e.code} {e.read().decode()[:300]}")


def query(port, q, **params):
    params["query"] = q
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(params)
    return json.load(urllib.request.urlopen(url, timeout=30))["data"]["result"]


def main():
    tmp = tempfile.mkdtemp(prefix="strata-deploy-layout.")
    procs, am = Procs(tmp), None
    try:
        bucket = {"objstore.yml": f"type: FILESYSTEM\nconfig: {{directory: {tmp}/bucket}}\n"}
        recv_sts, rule_sts = by_name("StatefulSet", "strata-receive"), by_name("StatefulSet", "strata-rule")
        receivers = [Pod(tmp, recv_sts, f"strata-receive-{i}") for i in range(recv_sts["spec"]["replicas"])]
        rulers = [Pod(tmp, rule_sts, f"strata-rule-{i}") for i in range(rule_sts["spec"]["replicas"])]
        router = Pod(tmp, by_name("Deployment", "strata-receive-router"), "strata-receive-router")
        querier = Pod(tmp, by_name("Deployment", "strata-query"), "strata-query")
        with open(os.path.join(tmp, "alertmanager.yml"), "w") as fh:
            fh.write(by_name("ConfigMap", "alertmanager")["data"]["alertmanager.yml"])
        os.environ["AM_CONFIG"] = os.path.join(tmp, "alertmanager.yml")
        am = alertmanager_start()

        svc = f".{NS}.svc.cluster.local"
        pods = {"strata-receive": receivers, "strata-rule": rulers}

        def dns(a):
            m = re.fullmatch(r"--endpoint=dnssrv\+_grpc\._tcp\.([\w-]+)" + re.escape(svc), a)
            if m:  # a headless Service's SRV records: its pods (Services of pods not run here: dropped)
                ps = pods.get(m.group(1))
                return ",".join(f"--endpoint=127.0.0.1:{p.grpc}" for p in ps) if ps else None
            a = re.sub(r"(strata-receive-\d+)\.strata-receive" + re.escape(svc) + r":\d+",
                       lambda mm: f"127.0.0.1:{next(p.grpc for p in receivers if p.name == mm.group(1))}", a)
            a = a.replace(f"http://strata-query{svc}:9090", f"http://127.0.0.1:{querier.http}")
            a = re.sub(r"http://alertmanager-\d+\.alertmanager" + re.escape(svc) + r":9093", am["AM_URL"], a)
            return a

        def expand(args):  # one dnssrv+ flag may stand for several --endpoint flags
            return [x for a in args for x in a.split(",")]

        ring = by_name("ConfigMap", "strata-receive-hashring")["data"]["hashrings.json"]
        ring_files = {"/etc/strata/hashring": {"hashrings.json": dns(ring)}}
        for p in receivers:
            args = p.args(dns, dict(ring_files, **{"/etc/strata/objstore": bucket}))
            p.proc = procs.start(p.name, [BIN] + args + ["--http-grace-period=1s", "--grpc-grace-period=1s"])
        args = router.args(dns, ring_files)
        router.proc = procs.start(router.name, [BIN] + args + ["--http-grace-period=1s", "--grpc-grace-period=1s"])
        for p in receivers + [router]:
            wait_ready(p.http, p.proc, p.name, 60)
        querier.proc = procs.start(querier.name, [BIN] + expand(querier.args(dns, {})))
        wait_ready(querier.http, querier.proc, querier.name, 60)

        rules = by_name("ConfigMap", "strata-rules")["data"]
        quick = {k: re.sub(r"interval: 1m", "interval: 1s", v) for k, v in rules.items()}
        for p in rulers:
            args = p.args(dns, {"/etc/strata/rules": quick, "/etc/strata/objstore": bucket})
            p.proc = procs.start(p.name, [BIN] + args + ["--eval-interval=1s", "--http-grace-period=1s",
                                                         "--grpc-grace-period=1s"])
        for p in rulers:
            wait_ready(p.http, p.proc, p.name, 60)

        now = int(time.time() * 1000)
        series = [([("__name__", "up"), ("instance", f"app-{i}"), ("job", "app")],
                   [(now - 10000 + k * 1000, 1.0) for k in range(10)]) for i in range(4)]

        def replicated_write():
            assert post_write(router.ports[19291], series) == 200
            seen = []

            def copies():  # the querier asks an endpoint once it has its Info
                seen[:] = query(querier.http, 'up{job="app"}', dedup="false")
                return len(seen) == 4 * len(receivers)
            try:
                wait_until(copies, querier.proc, "the receivers' copies", 30)
            finally:
                reps = sorted({r["metric"].get("receive_replica") for r in seen})
                assert reps == [p.name for p in receivers], f"copies on {reps}, want every receiver: {seen}"
            rs = query(querier.http, 'up{job="app"}')
            assert len(rs) == 4 and all("receive_replica" not in r["metric"] for r in rs), rs
            assert all(r["metric"].get("tenant_id") == "default-tenant" for r in rs), rs
        H.check("router_to_every_receiver_deduplicated", replicated_write)

        def recorded():
            def both():
                rs = query(querier.http, 'job:up:avg{job="app"}', dedup="false")
                return sorted(r["metric"].get("rule_replica") for r in rs) == [p.name for p in rulers]
            wait_until(both, None, "both rulers' job:up:avg", 60)
            rs = query(querier.http, 'job:up:avg{job="app"}')
            assert len(rs) == 1 and "rule_replica" not in rs[0]["metric"] and rs[0]["value"][1] == "1", rs
        H.check("rulers_record_through_querier_deduplicated", recorded)

        def watchdog():
            def fired():
                url = am["AM_URL"] + "/api/v2/alerts?" + urllib.parse.urlencode({"filter": "alertname=StrataWatchdog"})
                return json.load(urllib.request.urlopen(url, timeout=10))
            wait_until(lambda: fired(), None, "StrataWatchdog in Alertmanager", 60)
            alerts = fired()
            assert len(alerts) == 1, f"{len(alerts)} StrataWatchdog alerts (both rulers' should be one): {alerts}"
            assert "rule_replica" not in alerts[0]["labels"], alerts[0]["labels"]
        H.check("watchdog_alert_once_in_alertmanager", watchdog)

        def reload():
            req = urllib.request.Request(f"http://127.0.0.1:{rulers[0].http}/-/reload", data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
        H.check("reloader_webhook_accepted", reload)
    except Exception as e:  # noqa: BLE001 - setup failures are failures too
        H.result("setup", False, f"{type(e).__name__}: {e}")
    finally:
        procs.stop_all()
        alertmanager_stop(am)
        if H.failed:
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".log"):
                    with open(os.path.join(tmp, f)) as fh:
                        print(f"--- {f}\n" + "".join(fh.readlines()[-8:]))
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if H.failed else 0


if __name__ == "__main__":
    sys.exit(main())
