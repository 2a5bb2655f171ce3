"""`strata rule` towards its querier through --query.config, and the order of a group's rules when
independent ones run at the same time (--rules.max-concurrent-evals, default 4):

  - the querier serves HTTPS with basic auth (--http.config); the ruler reaches it through --query.config
    (scheme https, http_config with basic_auth password_file and tls_config ca_file/server_name); a ruler
    with a wrong password gets health "err" with the querier's 401 as lastError;
  - keep-alive: after about a hundred queries the ruler has opened only a few connections to the querier
    (counted in /proc/net/tcp, where closed connections linger in TIME_WAIT);
  - a group mixing chained rules (each reading the series the one before it records, through the querier,
    which has the ruler as a StoreAPI endpoint, over gRPC with TLS: --grpc-server-tls-*) and independent ones: every chained sample equals its own
    evaluation timestamp, i.e. each rule saw the earlier rule's result of the same evaluation, as in
    Prometheus's sequential order, while the independent rules ran alongside.
No Prometheus needed: the rules read only what the ruler records.
"""
import base64
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, stop  # noqa: E402
from lib_rule import BIN, Procs, free_port, get, ruler, wait_until  # noqa: E402
from lib_tls import bcrypt_hash, make_certs  # noqa: E402

H = Harness("rule_query_config")
tmp = tempfile.mkdtemp(prefix="strata-rule-qcfg-")
procs = Procs(tmp)
certs = make_certs(os.path.join(tmp, "certs"))
PASSWORD = "ru1er-Pa55"
with open(os.path.join(tmp, "web.yml"), "w") as f:
    f.write(f"tls_server_config:\n  cert_file: {certs}/server.crt\n  key_file: {certs}/server.key\n"
            f"basic_auth_users:\n  ruler: {bcrypt_hash(PASSWORD)}\n")
for name, pw in (("good", PASSWORD), ("bad", "wrong")):
    with open(os.path.join(tmp, f"{name}.pw"), "w") as f:
        f.write(pw + "\n")

RULES = os.path.join(tmp, "chain.rules.yml")
with open(RULES, "w") as f:
    f.write("""groups:
- name: chain
  interval: 1s
  rules:
  - record: step:a
    expr: vector(time())
  - record: ind:one
    expr: vector(1)
  - record: step:b
    expr: step:a
  - record: ind:two
    expr: vector(2)
  - record: ind:three
    expr: vector(3)
  - record: step:c
    expr: step:b + 0
  - record: ind:four
    expr: vector(4)
  - record: step:d
    expr: max(step:c)
""")


def qconfig(pwfile):
    return (f"- scheme: https\n  static_configs: ['127.0.0.1:{qport}']\n  http_config:\n"
            f"    basic_auth: {{username: ruler, password_file: {pwfile}}}\n"
            f"    tls_config: {{ca_file: {certs}/ca.crt, server_name: localhost}}\n")


def sockets_of(port):
    """TCP sockets of connections to 127.0.0.1:port, either end, in any state but LISTEN (a closed
    connection lingers in TIME_WAIT on the side that closed first)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            f_ = line.split()
            if f_[3] != "0A" and port in (int(f_[1].split(":")[1], 16), int(f_[2].split(":")[1], 16)):
                n += 1
    return n


try:
    rgrpc, qport = free_port(), free_port()
    q = procs.start("query", [BIN, "query", f"--http-address=127.0.0.1:{qport}", f"--grpc-address=127.0.0.1:{free_port()}",
                              f"--http.config={tmp}/web.yml", f"--endpoint=127.0.0.1:{rgrpc}",
                              "--grpc-client-tls-secure", f"--grpc-client-tls-ca={certs}/ca.crt",
                              "--grpc-client-server-name=localhost"])
    rp, rhttp, _ = ruler(procs, tmp, [f"--rule-file={RULES}", f"--data-dir={tmp}/rule", f"--query.config={qconfig(tmp + '/good.pw')}",
                                      "--eval-interval=1s", f"--grpc-server-tls-cert={certs}/server.crt",
                                      f"--grpc-server-tls-key={certs}/server.key"], grpc_port=rgrpc)
    bp, bhttp, _ = ruler(procs, tmp, [f"--rule-file={RULES}", f"--data-dir={tmp}/bad", f"--query.config={qconfig(tmp + '/bad.pw')}",
                                      "--eval-interval=1s"], name="bad")

    def healthy():
        rules = [r for g in get(rhttp, "/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules and all(r["health"] == "ok" for r in rules)
    H.check("https_basic_auth_query_config", lambda: wait_until(healthy, rp, "every rule healthy", 30))

    def refused():
        rules = [r for g in get(bhttp, "/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules and all(r["health"] == "err" and "401" in r.get("lastError", "") for r in rules)
    H.check("wrong_password_shows_401", lambda: wait_until(refused, bp, "every rule err with 401", 30))
    procs.procs.remove(bp)
    stop(bp)

    # a dozen evaluations of 8 rules: ~100 queries
    time.sleep(12)
    socks = sockets_of(qport)
    H.result("keep_alive_few_connections", socks <= 16, f"{socks} sockets to the querier after ~100 queries")

    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    auth = "Basic " + base64.b64encode(f"ruler:{PASSWORD}".encode()).decode()

    def q_range(expr, at):
        url = f"https://localhost:{qport}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
        req = urllib.request.Request(url, headers={"Authorization": auth})
        return json.load(urllib.request.urlopen(req, context=ctx, timeout=30))["data"]["result"]

    def in_order():
        at = time.time()
        bad, total = [], 0
        for name in ("step:a", "step:b", "step:c", "step:d"):
            for s in q_range(f"{name}[10s]", at):
                for t, v in s["values"]:
                    total += 1
                    if abs(float(v) - float(t)) > 1e-6:
                        bad.append((name, t, v))
        assert total >= 20 and not bad, f"{total} samples; not equal to their timestamps: {bad[:6]}"
    H.check("chained_rules_see_this_evaluation", in_order)
finally:
    procs.stop_all()
sys.exit(1 if H.failed else 0)
