"""`strata rule` against real peers: a Prometheus 2.42 scraping a target whose values the test sets, a strata
sidecar, a `strata query` over the sidecar and the ruler itself, and Debian's Alertmanager (scripts/alertmanager).

  - recording rules are stored and served over the StoreAPI (the querier sees them with the ruler's --label
    external labels); a later rule of the same group sees an earlier one's result;
  - an alert fires after its `for`, reaches Alertmanager (`amtool alert query`) with its labels, the external
    label, without the --alert.label-drop label, with rendered annotations ($labels, humanize, query/first/value,
    printf) and a generatorURL from --alert.query-url; it resolves when the condition clears;
  - /api/v1/rules and /api/v1/alerts in Prometheus's shapes; /metrics counters;
  - kill -9 of the ruler loses no recorded sample it had stored; the pending alert's `for` timer resumes from
    ALERTS_FOR_STATE after the restart;
  - a bad rule file is refused on reload (POST /-/reload -> 500, old rules keep running), SIGHUP loads a good one;
  - with every querier down, evaluations fail, are counted, show health "err" with the error, and nothing crashes.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from lib_harness import Harness  # noqa: E402
from lib_rule import (Procs, Target, alertmanager_start, alertmanager_stop, get, metric, prometheus,  # noqa: E402
                      querier, query, ruler, sidecar, wait_until, free_port)

H = Harness("rule_alertmanager")
tmp = tempfile.mkdtemp(prefix="strata-rule-am-")
procs = Procs(tmp)
am = None
tgt = Target()
tgt.set('node_load1{host="a"}', 1)
tgt.set('node_load1{host="b"}', 2)

RULES = os.path.join(tmp, "rules.yml")
with open(RULES, "w") as f:
    f.write("""groups:
- name: rec
  interval: 1s
  rules:
  - record: job:node_load:sum
    expr: sum by (job) (node_load1)
  - record: job:node_load:double
    expr: job:node_load:sum * 2
- name: alerts
  interval: 1s
  partial_response_strategy: warn
  rules:
  - alert: HighLoad
    expr: sum by (host) (node_load1) > 5
    for: 3s
    labels: {severity: page}
    annotations:
      summary: "{{ $labels.host }} load is {{ $value | humanize }}"
      total: '{{ with query "sum(node_load1)" }}{{ . | first | value | printf "%.1f" }}{{ end }}'
  - alert: SlowBurn
    expr: sum(node_load1) > 5
    for: 30s
""")


def amtool_alerts():
    out = subprocess.run(["amtool", "-o", "json", "alert", "query", f"--alertmanager.url={am['AM_URL']}"],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout or "[]")


def rule_alerts(port):
    return get(port, "/api/v1/alerts")["data"]["alerts"]


try:
    am = alertmanager_start()
    _, pport = prometheus(procs, tmp, tgt.port)
    _, sgrpc = sidecar(procs, tmp, pport)
    rgrpc, rhttp = free_port(), free_port()
    _, qport = querier(procs, tmp, [sgrpc, rgrpc])
    data = os.path.join(tmp, "rule-data")
    rargs = [f"--rule-file={RULES}", f"--data-dir={data}", f"--query=127.0.0.1:{qport}",
             f"--alertmanagers.url={am['AM_URL']}", '--label=rule_replica="r0"', '--label=cluster="eu1"',
             "--alert.label-drop=rule_replica", "--alert.query-url=http://thanos.example:9090", "--eval-interval=1s",
             "--resend-delay=10s", "--for-grace-period=1s"]
    rp, _, _ = ruler(procs, tmp, rargs, http_port=rhttp, grpc_port=rgrpc)

    # ---- recording rules through the StoreAPI ----
    def recorded():
        r = query(qport, "job:node_load:sum", dedup="false")
        return r and r[0]["value"][1] == "3" and r[0]["metric"].get("cluster") == "eu1"
    H.check("recorded_series_via_storeapi", lambda: wait_until(recorded, rp, "job:node_load:sum = 3", 40))

    def chained():
        r = query(qport, "job:node_load:double")
        return r and r[0]["value"][1] == "6"
    H.check("chained_rule_sees_earlier_result", lambda: wait_until(chained, rp, "job:node_load:double = 6", 20))

    def rules_shape():
        d = get(rhttp, "/api/v1/rules")
        assert d["status"] == "success", d
        gs = {g["name"]: g for g in d["data"]["groups"]}
        assert set(gs) == {"rec", "alerts"}, gs.keys()
        g = gs["rec"]
        assert g["file"] == RULES and g["interval"] == 1 and g["limit"] == 0, g
        assert g["lastEvaluation"] != "0001-01-01T00:00:00Z", g
        r0 = g["rules"][0]
        assert r0["type"] == "recording" and r0["health"] == "ok" and r0["name"] == "job:node_load:sum", r0
        assert r0["query"] == "sum by (job) (node_load1)", r0
        a = gs["alerts"]["rules"][0]
        assert a["type"] == "alerting" and a["state"] == "inactive" and a["duration"] == 3, a
        assert a["labels"] == {"severity": "page"} and a["alerts"] == [], a
        assert gs["alerts"]["partialResponseStrategy"] == "WARN", gs["alerts"]
        only = get(rhttp, "/api/v1/rules", {"type": "alert"})["data"]["groups"]
        assert all(r["type"] == "alerting" for g in only for r in g["rules"]), only
        bad = urllib.request.Request(f"http://127.0.0.1:{rhttp}/api/v1/rules?type=nope")
        try:
            urllib.request.urlopen(bad, timeout=10)
            raise AssertionError("type=nope accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.load(e)["errorType"] == "bad_data"
    H.check("api_rules_shape", rules_shape)

    # ---- an alert: pending, firing, in Alertmanager ----
    t_high = time.time()
    tgt.set('node_load1{host="a"}', 10)

    def pending():
        return any(a["labels"]["alertname"] == "HighLoad" and a["state"] == "pending" for a in rule_alerts(rhttp))
    H.check("alert_pending", lambda: wait_until(pending, rp, "HighLoad pending", 20))

    def in_am():
        return [a for a in amtool_alerts() if a["labels"].get("alertname") == "HighLoad"]
    H.check("alert_reaches_alertmanager", lambda: wait_until(in_am, rp, "HighLoad in Alertmanager", 30))
    fired_after = time.time() - t_high

    def am_alert():
        a = in_am()[0]
        want = {"alertname": "HighLoad", "host": "a", "severity": "page", "cluster": "eu1"}
        assert a["labels"] == want, a["labels"]
        assert a["annotations"] == {"summary": "a load is 10", "total": "12.0"}, a["annotations"]
        assert a["generatorURL"].startswith("http://thanos.example:9090/graph?g0.expr="), a["generatorURL"]
        assert "g0.tab=1" in a["generatorURL"], a["generatorURL"]
        assert fired_after >= 3, f"fired {fired_after:.1f}s after the condition, before its for: 3s"
    H.check("alertmanager_labels_annotations", am_alert)

    def firing_api():
        al = [a for a in rule_alerts(rhttp) if a["labels"]["alertname"] == "HighLoad"]
        assert al and al[0]["state"] == "firing", al
        assert al[0]["value"] == "1e+01", al[0]
        assert al[0]["labels"] == {"alertname": "HighLoad", "host": "a", "severity": "page"}, al
        r = query(qport, 'ALERTS{alertname="HighLoad"}')
        assert r and r[0]["metric"]["alertstate"] == "firing", r
    H.check("alert_firing_api_and_ALERTS", firing_api)
    H.result("alerts_sent_metric", metric(rhttp, "thanos_alert_sender_alerts_sent_total") > 0, "none counted")

    # ---- kill -9 while SlowBurn is pending: no stored sample lost, `for` restored ----
    from datetime import datetime

    def ts_of(at):
        return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    slow = [a for a in rule_alerts(rhttp) if a["labels"]["alertname"] == "SlowBurn"]
    H.result("slowburn_pending", slow and slow[0]["state"] == "pending", str(slow))
    active_at = ts_of(slow[0]["activeAt"]) if slow else 0
    time.sleep(max(0, active_at + 10 - time.time()))  # pending for 10s when killed
    before = query(qport, "count_over_time(job:node_load:sum[1h])", dedup="false")
    n_before = int(before[0]["value"][1]) if before else 0
    os.kill(rp.pid, signal.SIGKILL)
    rp.wait()
    t_restart = time.time()
    rp, _, _ = ruler(procs, tmp, rargs, name="rule2", http_port=rhttp, grpc_port=rgrpc)

    def kept():
        r = query(qport, "count_over_time(job:node_load:sum[1h])", dedup="false")
        return r and int(r[0]["value"][1]) >= n_before + 1
    H.check("kill9_keeps_recorded_samples", lambda: wait_until(kept, rp, f"more than {n_before} samples", 20))

    def restored():
        s = [a for a in rule_alerts(rhttp) if a["labels"]["alertname"] == "SlowBurn"]
        if not s or not s[0]["activeAt"]:
            return False
        # restored: activeAt moved by the downtime, so it lies well before the restart; not restored it
        # would be the first evaluation after the restart
        r = query(qport, 'ALERTS{alertname="SlowBurn"}')
        if not r:
            return False
        # Prometheus's restore moves activeAt by the downtime: the 10s already spent pending still count
        ts = ts_of(s[0]["activeAt"])
        assert active_at < ts < t_restart - 5, f"activeAt {ts:.1f} not restored (restart {t_restart:.1f}, was {active_at:.1f})"
        return True
    H.check("for_state_restored_after_restart", lambda: wait_until(restored, rp, "SlowBurn restored", 20))

    # ---- resolution (sent by the restarted ruler: with --resend-delay=10s an alert it sent stays valid 40s) ----
    H.check("refires_after_restart", lambda: wait_until(
        lambda: any(a["labels"]["alertname"] == "HighLoad" and a["state"] == "firing" for a in rule_alerts(rhttp)),
        rp, "HighLoad firing again", 20))
    time.sleep(1.5)
    tgt.set('node_load1{host="a"}', 1)

    def resolved():
        return not in_am() and not any(a["labels"]["alertname"] == "HighLoad" for a in rule_alerts(rhttp))
    H.check("alert_resolves", lambda: wait_until(resolved, rp, "HighLoad resolved in Alertmanager", 15))

    # ---- reload ----
    with open(RULES) as f:
        good = f.read()
    with open(RULES, "w") as f:
        f.write(good + "  - record: bad name\n    expr: up\n")
    req = urllib.request.Request(f"http://127.0.0.1:{rhttp}/-/reload", method="POST", data=b"")
    try:
        urllib.request.urlopen(req, timeout=30)
        H.result("reload_refuses_bad_file", False, "bad file accepted")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        H.result("reload_refuses_bad_file", e.code == 500 and "invalid recording rule name: bad name" in body
                 and "rules.yml: 2" in body, f"{e.code} {body}")
    H.result("old_rules_kept", len(get(rhttp, "/api/v1/rules")["data"]["groups"]) == 2, "groups changed")
    with open(RULES, "w") as f:
        f.write(good + "- name: extra\n  rules:\n  - record: extra:one\n    expr: vector(1)\n")
    rp.send_signal(signal.SIGHUP)
    H.check("sighup_reloads", lambda: wait_until(
        lambda: len(get(rhttp, "/api/v1/rules")["data"]["groups"]) == 3, rp, "3 groups after SIGHUP", 20))

    # ---- the querier's /api/v1/rules and /alerts over the Rules gRPC API, HA replicas merged ----
    # the second replica finds its querier and Alertmanager through the YAML configs instead of the flags
    r1args = [a.replace('rule_replica="r0"', 'rule_replica="r1"').replace(data, data + "-r1") for a in rargs
              if not a.startswith("--query=") and not a.startswith("--alertmanagers.url=")]
    amhost = am["AM_URL"].split("//")[1]
    r1args += [f"--query.config=- static_configs: ['127.0.0.1:{qport}']\n  scheme: http\n",
               f"--alertmanagers.config=alertmanagers:\n- static_configs: ['{amhost}']\n  timeout: 5s\n"
               "  api_version: v2\n  path_prefix: /\n"]
    r1, h1, r1g = ruler(procs, tmp, r1args, name="rule-r1")
    _, vport = querier(procs, tmp, [rgrpc, r1g], name="query-rules")
    tgt.set('node_load1{host="a"}', 10)

    def querier_rules():
        d = get(vport, "/api/v1/rules")
        gs = sorted((g["name"], len(g["rules"])) for g in d["data"]["groups"])
        assert gs == [("alerts", 2), ("extra", 1), ("rec", 2)], gs
        al = get(vport, "/api/v1/alerts")["data"]["alerts"]
        hl = [a for a in al if a["labels"]["alertname"] == "HighLoad" and a["state"] == "firing"]
        # one alert for both replicas: the replica label is gone, the other external label stays
        assert len(hl) == 1 and hl[0]["labels"] == {"alertname": "HighLoad", "host": "a", "severity": "page",
                                                    "cluster": "eu1"}, al
        only = get(vport, "/api/v1/rules", {"type": "record"})["data"]["groups"]
        assert all(r["type"] == "recording" for g in only for r in g["rules"]), only
        return True
    H.check("querier_rules_api_dedups_replicas", lambda: wait_until(querier_rules, r1, "querier rules", 30))
    H.check("replica_sends_via_alertmanagers_config", lambda: wait_until(
        lambda: metric(h1, "thanos_alert_sender_alerts_sent_total") > 0, r1, "replica's alerts sent", 20))
    tgt.set('node_load1{host="a"}', 1)

    # ---- partial_response_strategy: one store down ----
    _, qpart = querier(procs, tmp, [sgrpc, free_port()], name="query-partial")
    prules = os.path.join(tmp, "partial.yml")
    with open(prules, "w") as f:
        f.write("""groups:
- name: abort
  interval: 1s
  rules:
  - record: partial:abort
    expr: sum(node_load1)
- name: warn
  interval: 1s
  partial_response_strategy: warn
  rules:
  - record: partial:warn
    expr: sum(node_load1)
""")
    r3, h3, _ = ruler(procs, tmp, [f"--rule-file={prules}", f"--data-dir={tmp}/rule-partial", f"--query=127.0.0.1:{qpart}",
                                   "--eval-interval=1s"], name="rule-partial")

    def partial():
        gs = {g["name"]: g["rules"][0] for g in get(h3, "/api/v1/rules")["data"]["groups"]}
        if gs["abort"]["health"] != "err" or gs["warn"]["health"] != "ok":
            return False
        assert "127.0.0.1" in gs["abort"]["lastError"], gs["abort"]
        return metric(h3, "thanos_rule_evaluation_with_warnings_total") > 0 and \
            metric(h3, "prometheus_rule_evaluation_failures_total") > 0
    H.check("partial_response_warn_evaluates_abort_fails", lambda: wait_until(partial, r3, "warn ok, abort err", 30))

    # ---- every querier down ----
    dead = free_port()
    r2, h2, _ = ruler(procs, tmp, [f"--rule-file={RULES}", f"--data-dir={tmp}/rule-dead", f"--query=127.0.0.1:{dead}",
                                   "--eval-interval=1s"], name="rule-dead")

    def failing():
        g = get(h2, "/api/v1/rules")["data"]["groups"]
        r = g[0]["rules"][0]
        return r["health"] == "err" and "127.0.0.1" in r.get("lastError", "") and \
            metric(h2, "prometheus_rule_evaluation_failures_total") > 0
    H.check("querier_down_counted_and_shown", lambda: wait_until(failing, r2, "evaluation failures", 20))
    H.result("querier_down_no_crash", r2.poll() is None, "ruler exited")
    r2.send_signal(signal.SIGTERM)
    H.result("graceful_sigterm", r2.wait(30) == 0, f"exit status {r2.returncode}")
finally:
    procs.stop_all()
    alertmanager_stop(am)
    tgt.close()
sys.exit(1 if H.failed else 0)
