"""The same rule file loaded into a Prometheus 2.42 and into `strata rule` (which queries a `strata query` over that
Prometheus's sidecar) gives the same results:

  - every recording rule's samples (vector and scalar results, rule labels, `vector(time())` pinned to the
    evaluation timestamps) are equal, timestamp for timestamp, over the time both ran: both evaluate the group at
    the same instants (Prometheus's hash(file, group) offset);
  - ALERTS and ALERTS_FOR_STATE of an alert driven through pending, firing, keep_firing_for and resolution by
    time() are equal, sample for sample, over a whole cycle;
  - annotations rendered from node-exporter-style templates ($labels, $value, humanize*, printf, title, toUpper,
    if/else, query with first/value, range over sortByLabel) equal Prometheus's /api/v1/alerts rendering;
  - /api/v1/rules and /api/v1/alerts objects carry the same keys as Prometheus's.
The ruler's results carry the sidecar's external label (prom) and its own --label; both are set aside.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness  # noqa: E402
from lib_rule import Procs, Target, get, prometheus, querier, query, ruler, sidecar, wait_until  # noqa: E402

H = Harness("rule_prometheus")
tmp = tempfile.mkdtemp(prefix="strata-rule-prom-")
procs = Procs(tmp)
tgt = Target()
for m, size, avail in (("/", 100e9, 12e9), ("/var", 50e9, 40e9), ("/home", 2e12, 0.1e12)):
    tgt.set(f'node_filesystem_size_bytes{{mountpoint="{m}",fstype="ext4"}}', size)
    tgt.set(f'node_filesystem_avail_bytes{{mountpoint="{m}",fstype="ext4"}}', avail)
for h, v in (("web-1", 0.5), ("web-2", 3.25), ("db-1", 7.0)):
    tgt.set(f'node_load1{{host="{h}"}}', v)
tgt.set("node_boot_time_seconds", 1700000000)
tgt.set("node_memory_MemAvailable_bytes", 1288490188.8)

CYCLE = 20
RULES = os.path.join(tmp, "node.rules.yml")
with open(RULES, "w") as f:
    f.write(f"""groups:
- name: node-recording
  interval: 2s
  rules:
  - record: instance_mountpoint:node_filesystem_avail:ratio
    expr: node_filesystem_avail_bytes{{fstype="ext4"}} / node_filesystem_size_bytes{{fstype="ext4"}}
  - record: job:node_load1:sum
    expr: sum by (job) (node_load1)
    labels: {{team: infra}}
  - record: cluster:eval_time:mod
    expr: vector(time() % 1000)
  - record: cluster:hosts:count
    expr: count(node_load1) + 0.5
- name: node-alerts
  interval: 2s
  rules:
  - alert: FilesystemAlmostFull
    expr: node_filesystem_avail_bytes{{fstype="ext4"}} / node_filesystem_size_bytes{{fstype="ext4"}} < 0.2
    labels:
      severity: '{{{{ if lt $value 0.1 }}}}critical{{{{ else }}}}warning{{{{ end }}}}'
    annotations:
      summary: 'Filesystem {{{{ $labels.mountpoint }}}} is almost full'
      description: '{{{{ $labels.mountpoint | toUpper }}}} has {{{{ $value | humanizePercentage }}}} left ({{{{ printf "%.3f" $value }}}})'
  - alert: HighLoad
    expr: sum by (host) (node_load1) > 3
    annotations:
      summary: '{{{{ $labels.host | title }}}}: load {{{{ $value | humanize }}}}, total {{{{ with query "sum(node_load1)" }}}}{{{{ . | first | value | humanize }}}}{{{{ end }}}}'
      hosts: '{{{{ range query "node_load1" | sortByLabel "host" }}}}{{{{ .Labels.host }}}}={{{{ .Value }}}} {{{{ end }}}}'
      uptime: '{{{{ with query "time() - node_boot_time_seconds" }}}}{{{{ . | first | value | humanizeDuration }}}}{{{{ end }}}}'
      mem: '{{{{ with query "node_memory_MemAvailable_bytes" }}}}{{{{ . | first | value | humanize1024 }}}}B{{{{ end }}}}'
      boot: '{{{{ with query "node_boot_time_seconds" }}}}{{{{ . | first | value | humanizeTimestamp }}}}{{{{ end }}}}'
  - alert: Cycle
    expr: sum(node_load1) > 0 and on() (vector(time() % {CYCLE}) < 8)
    for: 4s
    keep_firing_for: 4s
    labels: {{severity: info}}
""")

STRIP = {"prom", "rule_replica"}


def samples(port, expr, at):
    out = {}
    for s in query(port, f"{expr}[60s]", time=at):
        key = tuple(sorted((k, v) for k, v in s["metric"].items() if k not in STRIP))
        out[key] = {float(t): v for t, v in s["values"]}
    return out


def compare(name, expr, at, lo, hi):
    """Samples of expr in [lo, hi] from Prometheus and from the ruler are equal (and there are some)."""
    p = samples(pport, expr, at)
    r = samples(vport, expr, at)

    def window(d):
        return {k: {t: v for t, v in s.items() if lo <= t <= hi} for k, s in d.items()}
    pw, rw = window(p), window(r)
    pw = {k: v for k, v in pw.items() if v}
    rw = {k: v for k, v in rw.items() if v}
    ok = pw == rw and sum(len(v) for v in pw.values()) > 0
    why = "" if ok else f"window [{lo}, {hi}]\n prometheus {pw}\n ruler      {rw}"
    H.result(name, ok, why)


try:
    _, pport = prometheus(procs, tmp, tgt.port, rule_files=[RULES], eval_interval="2s")
    _, sgrpc = sidecar(procs, tmp, pport)
    _, qport = querier(procs, tmp, [sgrpc])
    bucket = os.path.join(tmp, "bucket")
    rp, rhttp, rgrpc = ruler(procs, tmp, [f"--rule-file={RULES}", f"--data-dir={tmp}/rule", f"--query=127.0.0.1:{qport}",
                                          '--label=rule_replica="r1"', "--eval-interval=2s",
                                          f"--objstore.config=type: FILESYSTEM\nconfig: {{directory: {bucket}}}"])
    _, vport = querier(procs, tmp, [rgrpc], name="view")
    t_start = time.time()

    # a whole Cycle after both have evaluated twice (ALERTS are written from the third evaluation on)
    c0 = (int(t_start + 6) // CYCLE + 1) * CYCLE
    wait_until(lambda: time.time() > c0 + CYCLE + 3, rp, "one alert cycle", c0 + CYCLE + 10 - time.time())
    at = c0 + CYCLE + 2
    for rec in ("instance_mountpoint:node_filesystem_avail:ratio", "job:node_load1:sum", "cluster:eval_time:mod",
                "cluster:hosts:count"):
        compare("recorded_" + rec, rec, at, c0, c0 + CYCLE)
    compare("ALERTS_cycle", 'ALERTS{alertname="Cycle"}', at, c0, c0 + CYCLE)
    compare("ALERTS_FOR_STATE_cycle", 'ALERTS_FOR_STATE{alertname="Cycle"}', at, c0, c0 + CYCLE)
    compare("ALERTS_fs_and_load", 'ALERTS{alertname!="Cycle"}', at, c0, c0 + CYCLE)
    H.result("cycle_has_firing", any(dict(k).get("alertstate") == "firing"
                                     for k in samples(vport, 'ALERTS{alertname="Cycle"}', at)), "never fired")

    def alerts(port):
        out = {}
        for a in get(port, "/api/v1/alerts")["data"]["alerts"]:
            if a["labels"]["alertname"] == "Cycle":
                continue
            key = tuple(sorted((k, v) for k, v in a["labels"].items() if k not in STRIP))
            out[key] = (a["annotations"], a["state"], a["value"], sorted(a.keys()))
        return out
    pa, ra = alerts(pport), alerts(rhttp)
    H.result("annotations_equal_prometheus", pa == ra and len(pa) == 4, f"\n prometheus {pa}\n ruler      {ra}")

    def keys(port):
        gs = get(port, "/api/v1/rules")["data"]["groups"]
        gk = sorted(set(k for g in gs for k in g) - {"partialResponseStrategy"})
        rk = sorted(set((r["type"], k) for g in gs for r in g["rules"] for k in r if k != "lastError"))
        return gk, rk, sorted((g["name"], g["interval"], [r["name"] for r in g["rules"]]) for g in gs)
    H.result("rules_api_same_shape", keys(pport) == keys(rhttp), f"\n prometheus {keys(pport)}\n ruler      {keys(rhttp)}")

    # SIGTERM: the head is cut into a block and shipped, source "ruler", the --label set as external labels
    rp.send_signal(signal.SIGTERM)
    H.result("graceful_sigterm", rp.wait(60) == 0, f"exit {rp.returncode}")
    metas = glob.glob(os.path.join(bucket, "*", "meta.json"))

    def shipped():
        assert metas, "no block in the bucket"
        m = json.load(open(metas[0]))
        assert m["thanos"]["source"] == "ruler" and m["thanos"]["labels"] == {"rule_replica": "r1"}, m["thanos"]
        assert m["stats"]["numSamples"] > 0, m["stats"]
        db = os.path.join(tmp, "promtool-db")  # promtool wants a TSDB directory (with a wal/)
        shutil.copytree(os.path.dirname(metas[0]), os.path.join(db, os.path.basename(os.path.dirname(metas[0]))))
        os.makedirs(os.path.join(db, "wal"))
        out = subprocess.run(["promtool", "tsdb", "dump", db],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "cluster:eval_time:mod" in out.stdout, out.stderr[-500:]
    H.check("block_shipped_and_readable_by_promtool", shipped)
finally:
    procs.stop_all()
    tgt.close()
sys.exit(1 if H.failed else 0)
