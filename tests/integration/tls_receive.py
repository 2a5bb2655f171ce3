#!/usr/bin/env python3
"""TLS between the write path's and the ruler's components, against real peers: a Prometheus 2.42
remote-writing over HTTPS with mutual TLS, an Alertmanager 0.25 behind TLS and basic auth. Certificates
come from the openssl command (lib_tls.py).

  Prometheus --HTTPS, client cert O=team-a--> receive (router: --remote-write.server-tls-*,
      --receive.tenant-certificate-field=organization) --gRPC mTLS (--remote-write.client-tls-*)-->
      receive (ingestor: --grpc-server-tls-*, --http.config) --gRPC mTLS--> query (--grpc-client-tls-*,
      --http.config: client certificate + basic auth)
  rule --HTTPS, client cert + basic auth (--query.config http_config)--> query
  rule --HTTPS + basic auth (--alertmanagers.config http_config)--> Alertmanager (--web.config.file)
  query-frontend --HTTPS, client cert (--query-frontend.downstream-tripper-config tls_config)--> query

- Prometheus's samples reach the ingestor under tenant_id="team-a" (from its certificate, not a header)
  and the querier answers them over HTTPS
- the remote-write port refuses plaintext, no client certificate and an untrusted one (the handshake
  fails), answers 400 to a trusted certificate without an organization, and keeps taking Prometheus's writes
- a router forwarding without --remote-write.client-tls-secure cannot reach the TLS ingestor (its writes fail)
- the ingestor's HTTP port (--http.config): basic auth 200 / wrong password 401
- the ruler's recording rule is evaluated through the HTTPS querier (health ok, the result in its StoreAPI
  over mTLS), its alert reaches the TLS Alertmanager; its own HTTP port speaks HTTPS with basic auth
- the query-frontend answers through its TLS downstream; without the client's credentials the querier's 401
  comes back
- bad flags: a tenant certificate field without client CA, an unknown field -> exit 2 naming the flag
"""
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_until  # noqa: E402
from lib_receive import snappy_block, write_request  # noqa: E402
from lib_tls import bcrypt_hash, client_cert, make_certs  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
STRATA = os.environ.get("STRATA_BIN", "build/strata")
h = Harness("tls_receive")
tmp = tempfile.mkdtemp(prefix="strata-tls-receive.")
certs = make_certs(os.path.join(tmp, "certs"))
client_cert(certs, "team-a", "/O=team-a/OU=ops/CN=prom-a")
C = lambda f: os.path.join(certs, f)  # noqa: E731
PASSWORD = "rul3r-Pa55"
HASH = bcrypt_hash(PASSWORD)
AUTH = "Basic " + base64.b64encode(f"ruler:{PASSWORD}".encode()).decode()


def write(name, text):
    with open(os.path.join(tmp, name), "w") as f:
        f.write(text)
    return os.path.join(tmp, name)


web_basic = write("web-basic.yml", f"""tls_server_config:
  cert_file: {C('server.crt')}
  key_file: {C('server.key')}
basic_auth_users:
  ruler: {HASH}
""")
web_mtls = write("web-mtls.yml", f"""tls_server_config:
  cert_file: {C('server.crt')}
  key_file: {C('server.key')}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {C('ca.crt')}
basic_auth_users:
  ruler: {HASH}
""")
GRPC_SERVER_TLS = [f"--grpc-server-tls-cert={C('server.crt')}", f"--grpc-server-tls-key={C('server.key')}",
                   f"--grpc-server-tls-client-ca={C('ca.crt')}"]
GRPC_CLIENT_TLS = ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('ca.crt')}",
                   f"--grpc-client-tls-cert={C('client.crt')}", f"--grpc-client-tls-key={C('client.key')}"]

procs = []


def start(name, args):
    log = open(os.path.join(tmp, name + ".log"), "a")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def ctx(cert=None, ca="ca.crt"):
    c = ssl.create_default_context(cafile=C(ca))
    if cert:
        c.load_cert_chain(C(cert + ".crt"), C(cert + ".key"))
    return c


def https(port, path, cert=None, auth=AUTH, data=None, headers=None, timeout=15, scheme="https"):
    """(status, body) of a request; ssl/connection errors propagate."""
    hd = dict(headers or {})
    if auth:
        hd["Authorization"] = auth
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", data=data, headers=hd,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx(cert) if scheme == "https" else None) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ready(port, p, what, cert=None, auth=AUTH, scheme="https", timeout=120):
    wait_until(lambda: https(port, "/-/ready", cert=cert, auth=auth, scheme=scheme, timeout=2)[0] == 200, p, what,
               timeout)


def query(port, q, cert="client"):
    st, body = https(port, "/api/v1/query?" + urllib.parse.urlencode({"query": q}), cert=cert)
    if st != 200:
        raise RuntimeError(f"query {q}: {st} {body[:200]}")
    return json.loads(body)["data"]["result"]


def rw_body():
    now = int(time.time() * 1000)
    return snappy_block(write_request([([("__name__", "tls_probe"), ("job", "t")], [(now, 1.0)])]))


RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


def curl_post(port, *extra):
    """curl's exit code and HTTP status of a remote-write POST."""
    body = os.path.join(tmp, "rw.bin")
    with open(body, "wb") as f:
        f.write(rw_body())
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--data-binary",
                        "@" + body, "-H", "Content-Encoding: snappy", "-H", "Content-Type: application/x-protobuf",
                        *extra, f"https://127.0.0.1:{port}/api/v1/receive"], capture_output=True, text=True)
    return r.returncode, int(r.stdout or 0)


am_env = None
try:
    # ---- bad flags first (no process stays up) ----
    def bad_flags():
        for args, want in (
                (["--receive.tenant-certificate-field=organization"], "--receive.tenant-certificate-field"),
                ([f"--remote-write.server-tls-cert={C('server.crt')}", f"--remote-write.server-tls-key={C('server.key')}",
                  f"--remote-write.server-tls-client-ca={C('ca.crt')}", "--receive.tenant-certificate-field=serial"],
                 "serial"),
                ([f"--remote-write.server-tls-cert={C('server.crt')}"], "--remote-write.server-tls-key"),
                (["--remote-write.client-tls-secure", f"--remote-write.client-tls-ca={tmp}/missing.crt"], "missing.crt")):
            r = subprocess.run([STRATA, "receive", f"--tsdb.path={tmp}/bad", "--check-config"] + args,
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 2 or want not in r.stderr:
                raise AssertionError(f"{args}: exit {r.returncode}, stderr {r.stderr!r}")
    h.check("bad TLS flags exit 2 naming the flag", bad_flags)

    # ---- ingestor: gRPC mTLS, HTTPS + basic auth on its HTTP port ----
    ing_http, ing_grpc, ing_rw = free_port(), free_port(), free_port()
    ing = start("ingestor", [STRATA, "receive", f"--tsdb.path={tmp}/ingestor", f"--http-address=127.0.0.1:{ing_http}",
                             f"--grpc-address=127.0.0.1:{ing_grpc}", f"--remote-write.address=127.0.0.1:{ing_rw}",
                             f"--http.config={web_basic}", "--label=replica=\"ing\"", "--http-grace-period=1s",
                             "--grpc-grace-period=1s"] + GRPC_SERVER_TLS)
    # ---- router: HTTPS with client certificates, tenant from the organization; forwards over gRPC mTLS ----
    ring = json.dumps([{"endpoints": [f"127.0.0.1:{ing_grpc}"]}])
    rt_http, rt_rw = free_port(), free_port()
    router = start("router", [
        STRATA, "receive", f"--tsdb.path={tmp}/router", f"--http-address=127.0.0.1:{rt_http}",
        f"--grpc-address=127.0.0.1:{free_port()}", f"--remote-write.address=127.0.0.1:{rt_rw}",
        f"--receive.hashrings={ring}", "--http-grace-period=1s", "--grpc-grace-period=1s",
        f"--remote-write.server-tls-cert={C('server.crt')}", f"--remote-write.server-tls-key={C('server.key')}",
        f"--remote-write.server-tls-client-ca={C('ca.crt')}", "--remote-write.server-tls-min-version=1.2",
        "--receive.tenant-certificate-field=organization",
        "--remote-write.client-tls-secure", f"--remote-write.client-tls-ca={C('ca.crt')}",
        f"--remote-write.client-tls-cert={C('client.crt')}", f"--remote-write.client-tls-key={C('client.key')}"])
    # ---- querier over the ingestor (gRPC mTLS), HTTPS with client certificates + basic auth ----
    q_http = free_port()
    querier = start("query", [STRATA, "query", f"--http-address=127.0.0.1:{q_http}",
                              f"--grpc-address=127.0.0.1:{free_port()}", f"--endpoint=127.0.0.1:{ing_grpc}",
                              f"--http.config={web_mtls}"] + GRPC_CLIENT_TLS)
    ready(ing_http, ing, "ingestor")
    ready(rt_http, router, "router", auth=None, scheme="http")
    ready(q_http, querier, "query", cert="client")

    # ---- a real Prometheus 2.42 remote-writing with its team-a certificate ----
    prom_port = free_port()
    prom_cfg = write("prometheus.yml", f"""global:
  scrape_interval: 1s
  external_labels: {{prom: p1}}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]
remote_write:
  - url: https://127.0.0.1:{rt_rw}/api/v1/receive
    tls_config:
      ca_file: {C('ca.crt')}
      cert_file: {C('team-a.crt')}
      key_file: {C('team-a.key')}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
""")
    prom = start("prometheus", ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp}/prom",
                                f"--web.listen-address=127.0.0.1:{prom_port}"])

    def prom_writes_with_mtls():
        wait_until(lambda: query(q_http, 'up{job="prometheus",tenant_id="team-a"}'), prom,
                   "Prometheus's samples under tenant team-a", 150)
        other = query(q_http, 'count by (tenant_id) ({job="prometheus"})')
        tenants = sorted(s["metric"].get("tenant_id", "") for s in other)
        if tenants != ["team-a"]:
            raise AssertionError(f"tenants {tenants}, want only team-a (from the certificate)")
    h.check("Prometheus 2.42 remote-writes over HTTPS with mutual TLS, tenant from its certificate",
            prom_writes_with_mtls)

    def refused():
        got = {
            "plaintext": subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                         "--data-binary", "x", f"http://127.0.0.1:{rt_rw}/api/v1/receive"],
                                        capture_output=True, text=True).stdout,
            "no client certificate": curl_post(rt_rw, "--cacert", C("ca.crt")),
            "untrusted client certificate": curl_post(rt_rw, "--cacert", C("ca.crt"), "--cert",
                                                      C("untrusted-client.crt"), "--key", C("untrusted-client.key")),
        }
        if got["plaintext"] not in ("", "000"):
            raise AssertionError(f"plaintext got HTTP {got['plaintext']}")
        for k in ("no client certificate", "untrusted client certificate"):
            if got[k][1] != 0:
                raise AssertionError(f"{k}: HTTP {got[k][1]}, want a failed handshake")
        rc, st = curl_post(rt_rw, "--cacert", C("ca.crt"), "--cert", C("client.crt"), "--key", C("client.key"))
        if st != 400:
            raise AssertionError(f"a certificate without an organization: HTTP {st} (curl {rc}), want 400")
        rc, st = curl_post(rt_rw, "--cacert", C("ca.crt"), "--cert", C("team-a.crt"), "--key", C("team-a.key"),
                           "-H", "THANOS-TENANT: someone-else")
        if st != 200:
            raise AssertionError(f"team-a's certificate: HTTP {st} (curl {rc})")
        # the header did not choose the tenant
        if query(q_http, 'tls_probe{tenant_id="someone-else"}'):
            raise AssertionError("the THANOS-TENANT header overrode the certificate's tenant")
        if not query(q_http, 'tls_probe{tenant_id="team-a"}'):
            raise AssertionError("the probe sample is not under team-a")
        # Prometheus keeps writing through all this
        before = float(query(q_http, 'timestamp(up{job="prometheus",tenant_id="team-a"})')[0]["value"][1])
        wait_until(lambda: float(query(q_http, 'timestamp(up{job="prometheus",tenant_id="team-a"})')[0]["value"][1])
                   > before, prom, "Prometheus's writes going on", 30)
    h.check("remote-write port refuses plaintext, no or untrusted certificates; 400 without an organization",
            refused)

    def forward_needs_tls():
        rt2_http, rt2_rw = free_port(), free_port()
        rt2 = start("router-plain-forward", [
            STRATA, "receive", f"--tsdb.path={tmp}/router2", f"--http-address=127.0.0.1:{rt2_http}",
            f"--grpc-address=127.0.0.1:{free_port()}", f"--remote-write.address=127.0.0.1:{rt2_rw}",
            f"--receive.hashrings={ring}", "--http-grace-period=1s", "--grpc-grace-period=1s",
            "--receive-forward-timeout=2s"])
        try:
            ready(rt2_http, rt2, "router without client TLS", auth=None, scheme="http")
            req = urllib.request.Request(f"http://127.0.0.1:{rt2_rw}/api/v1/receive", data=rw_body(),
                                         headers=RW_HEADERS, method="POST")
            try:
                st = urllib.request.urlopen(req, timeout=30).status
            except urllib.error.HTTPError as e:
                st = e.code
            if st < 500:
                raise AssertionError(f"a plaintext forward to the TLS ingestor answered {st}")
        finally:
            stop(rt2)
    h.check("forwarding without --remote-write.client-tls-secure cannot reach the TLS ingestor", forward_needs_tls)

    def ingestor_http_config():
        st, body = https(ing_http, "/metrics")
        if st != 200 or "thanos_receive" not in body:
            raise AssertionError(f"/metrics with basic auth: {st}")
        st, _ = https(ing_http, "/metrics", auth="Basic " + base64.b64encode(b"ruler:wrong").decode())
        if st != 401:
            raise AssertionError(f"wrong password: {st}, want 401")
    h.check("receive --http.config: HTTPS with basic auth, wrong password 401", ingestor_http_config)

    # ---- Alertmanager behind TLS + basic auth; the ruler talks to it and to the querier over HTTPS ----
    am_env = {"AM_WEB_CONFIG": web_basic, "AM_CURL_OPTS": f"--cacert {C('ca.crt')} -u ruler:{PASSWORD}"}
    out = subprocess.run([os.path.join(ROOT, "scripts", "alertmanager"), "start"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, **am_env))
    if out.returncode != 0:
        raise RuntimeError("scripts/alertmanager start failed: " + out.stderr)
    for line in out.stdout.splitlines():
        k, v = line.replace("export ", "").split("=", 1)
        am_env[k] = v
    am_port = int(am_env["AM_PORT"])
    rules = write("rules.yml", """groups:
  - name: tls
    interval: 1s
    rules:
      - record: tls:up:count
        expr: count(up{tenant_id="team-a"})
      - alert: TLSAlwaysFiring
        expr: vector(1)
""")
    http_cfg = f"""http_config:
    basic_auth: {{username: ruler, password: {PASSWORD}}}
    tls_config: {{ca_file: {C('ca.crt')}, cert_file: {C('client.crt')}, key_file: {C('client.key')}}}"""
    query_cfg = write("query.yml", f"""- {http_cfg}
  scheme: https
  static_configs: ["127.0.0.1:{q_http}"]
""")
    am_cfg = write("am.yml", f"""alertmanagers:
  - http_config:
      basic_auth: {{username: ruler, password_file: {write('am-pass', PASSWORD + chr(10))}}}
      tls_config: {{ca_file: {C('ca.crt')}}}
    scheme: https
    static_configs: ["127.0.0.1:{am_port}"]
""")
    r_http, r_grpc = free_port(), free_port()
    ruler = start("rule", [STRATA, "rule", f"--http-address=127.0.0.1:{r_http}", f"--grpc-address=127.0.0.1:{r_grpc}",
                           f"--data-dir={tmp}/rule", f"--rule-file={rules}", f"--query.config-file={query_cfg}",
                           f"--alertmanagers.config-file={am_cfg}", "--eval-interval=1s", "--label=ruler=\"r1\"",
                           f"--http.config={web_basic}"] + GRPC_SERVER_TLS)
    ready(r_http, ruler, "rule")

    def ruler_queries_over_https():
        def ok():
            st, body = https(r_http, "/api/v1/rules")
            rs = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"] if r["name"] == "tls:up:count"]
            return st == 200 and rs and rs[0]["health"] == "ok" and rs[0].get("lastEvaluation", "").startswith("2")
        wait_until(ok, ruler, "the recording rule evaluated through the HTTPS querier", 120)
        # its result, read back from the ruler's StoreAPI over mTLS by a querier
        q2 = free_port()
        p = start("query-rule", [STRATA, "query", f"--http-address=127.0.0.1:{q2}",
                                 f"--grpc-address=127.0.0.1:{free_port()}", f"--endpoint=127.0.0.1:{r_grpc}"]
                  + GRPC_CLIENT_TLS)
        try:
            ready(q2, p, "query over the ruler", auth=None, scheme="http")
            wait_until(lambda: https(q2, "/api/v1/query?query=tls:up:count", auth=None, scheme="http")[1].count(
                '"ruler":"r1"') == 1, p, "tls:up:count in the ruler's StoreAPI", 120)
        finally:
            stop(p)
    h.check("rule -> query over HTTPS (client certificate + basic auth), results on its StoreAPI over mTLS",
            ruler_queries_over_https)

    def ruler_alerts_over_https():
        def fired():
            st, body = https(am_port, "/api/v2/alerts")
            return st == 200 and any(a["labels"].get("alertname") == "TLSAlwaysFiring" for a in json.loads(body))
        wait_until(fired, ruler, "TLSAlwaysFiring in the TLS Alertmanager", 120)
    h.check("rule -> Alertmanager over HTTPS with basic auth (password_file)", ruler_alerts_over_https)

    def frontend_tls_downstream():
        f_http = free_port()
        tripper = write("tripper.yml", f"""max_idle_conns_per_host: 100
tls_config:
  ca_file: {C('ca.crt')}
  cert_file: {C('client.crt')}
  key_file: {C('client.key')}
""")
        p = start("query-frontend", [STRATA, "query-frontend", f"--http-address=127.0.0.1:{f_http}",
                                     f"--query-frontend.downstream-url=https://127.0.0.1:{q_http}",
                                     f"--query-frontend.downstream-tripper-config-file={tripper}",
                                     "--query-frontend.forward-header=Authorization"])
        try:
            ready(f_http, p, "query-frontend", auth=None, scheme="http")
            now = int(time.time())
            path = "/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": 'up{tenant_id="team-a"}', "start": now - 60, "end": now, "step": 5})
            st, body = https(f_http, path, scheme="http")
            if st != 200 or not json.loads(body)["data"]["result"]:
                raise AssertionError(f"through the frontend: {st} {body[:300]}")
            st, body = https(f_http, path, scheme="http", auth=None)
            if st != 401:
                raise AssertionError(f"without credentials: {st} {body[:200]}, want the querier's 401")
        finally:
            stop(p)
    h.check("query-frontend -> query over HTTPS with a client certificate (tripper tls_config)",
            frontend_tls_downstream)
except Exception as e:  # noqa: BLE001 - setup failures are test failures
    h.result("setup", False, f"{type(e).__name__}: {e}")
finally:
    for p in reversed(procs):
        stop(p)
    if am_env and "AM_DATA_DIR" in am_env:
        subprocess.run([os.path.join(ROOT, "scripts", "alertmanager"), "stop"], env=dict(os.environ, **am_env),
                       timeout=30)
    if h.failed:
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if h.failed else 0)
