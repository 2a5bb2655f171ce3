#!/usr/bin/env python3
"""HTTPS, client certificates and basic auth on a Strata HTTP server (--http.config, Prometheus's web
configuration file), against real clients: curl, promtool query, Python's ssl and a real Prometheus 2.42
scraping /metrics over HTTPS with basic auth. Certificates come from the openssl command (lib_tls.py).

- the web config passes `promtool check web-config`; a broken one stops strata with file:line:col
- curl: right password 200 (with the configured headers), wrong or none 401 + WWW-Authenticate: Basic,
  plaintext on the TLS port refused; the password never reaches the log
- promtool query instant over HTTPS with basic auth (credentials in the URL, CA via SSL_CERT_FILE)
- Prometheus 2.42 scrapes strata's /metrics (tls_config + basic_auth): up == 1; a wrong password: up == 0
- the web config rewritten to require client certificates (RequireAndVerifyClientCert): picked up
  without a restart; no certificate / an untrusted one fail the handshake, the trusted one works
- certificate and key files replaced on disk: new connections get the new certificate, no restart
- a handshake flood and hundreds of half-open connections: other clients are still served quickly,
  and half-open connections are closed after the handshake timeout
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_until  # noqa: E402
from lib_tls import bcrypt_hash, make_certs  # noqa: E402

STRATA = os.environ.get("STRATA_BIN", "build/strata")
h = Harness("tls_http")
tmp = tempfile.mkdtemp(prefix="strata-tls-http.")
certs = make_certs(os.path.join(tmp, "certs"))
PASSWORD = "s3cret-Pa55"
HASH = bcrypt_hash(PASSWORD)
web = os.path.join(certs, "web.yml")


def write_web(client_auth=None):
    lines = ["tls_server_config:", "  cert_file: server.crt", "  key_file: server.key"]
    if client_auth:
        lines += [f"  client_auth_type: {client_auth}", "  client_ca_file: ca.crt"]
    lines += ["http_server_config:", "  headers:", "    X-Content-Type-Options: nosniff",
              "basic_auth_users:", f"  alice: {HASH}", ""]
    tmpf = web + ".tmp"
    with open(tmpf, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmpf, web)


def curl(*args, url_path="/-/healthy", user="alice:" + PASSWORD, port=None, extra=()):
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", "--cacert",
           os.path.join(certs, "ca.crt"), *extra]
    if user:
        cmd += ["-u", user]
    cmd += [*args, f"https://127.0.0.1:{port}{url_path}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return r.returncode, int(code or 0), body


def tls_connect(port, cert=None, key=None, timeout=5):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(certs, cert), os.path.join(certs, key))
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname="localhost")


def get_with_client_cert(port, cert, key):
    s = tls_connect(port, cert, key)
    auth = "Basic " + __import__("base64").b64encode(f"alice:{PASSWORD}".encode()).decode()
    s.sendall(f"GET /-/healthy HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b" ", 2)[1].decode()


def served_cn(port):
    s = tls_connect(port)
    cert = s.getpeercert()
    s.close()
    return dict(x[0] for x in cert["subject"])["commonName"]


procs = []
try:
    write_web()
    r = subprocess.run(["promtool", "check", "web-config", web], capture_output=True, text=True)
    h.result("promtool_check_web_config", r.returncode == 0, r.stdout + r.stderr)

    bad = os.path.join(certs, "bad.yml")
    with open(bad, "w") as f:
        f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n")
    r = subprocess.run([STRATA, "query", f"--http-address=127.0.0.1:{free_port()}", f"--grpc-address=127.0.0.1:{free_port()}",
                        f"--http.config={bad}"], capture_output=True, text=True, timeout=30)
    h.result("bad_web_config_refused", r.returncode != 0 and "bad.yml:4:21" in r.stderr and "Sometimes" in r.stderr,
             f"rc={r.returncode} stderr={r.stderr!r}")

    def check_config_every_server():
        # every server command takes --http.config; --check-config loads it with its certificates
        mism = os.path.join(certs, "mismatch.yml")
        with open(mism, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n")
        fs = os.path.join(tmp, "fs.yml")
        with open(fs, "w") as f:
            f.write(f"type: FILESYSTEM\nconfig: {{directory: {tmp}/bucket}}\n")
        for cmd in ("query", "store", "sidecar", "query-frontend", "tools bucket web"):
            help_text = subprocess.run([STRATA, *cmd.split(), "--help"], capture_output=True, text=True).stdout
            assert "--http.config=" in help_text, f"strata {cmd} has no --http.config"
            base = [STRATA, *cmd.split(), "--http-address=127.0.0.1:0", "--check-config"]
            if "--grpc-address=" in help_text:
                base.append("--grpc-address=127.0.0.1:0")
            if "--objstore.config-file=" in help_text:
                base.append(f"--objstore.config-file={fs}")
            if "--query-frontend.downstream-url=" in help_text:
                base.append("--query-frontend.downstream-url=http://127.0.0.1:1")
            r = subprocess.run(base + [f"--http.config={web}"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0 and "configuration OK" in r.stdout, (cmd, r.returncode, r.stdout, r.stderr)
            r = subprocess.run(base + [f"--http.config={mism}"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and "mismatch.yml" in r.stderr and "key values mismatch" in r.stderr, \
                (cmd, r.returncode, r.stderr)
            r = subprocess.run(base + [f"--http.config={tmp}/absent.yml"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and "absent.yml" in r.stderr, (cmd, r.returncode, r.stderr)
    h.check("check_config_every_server", check_config_every_server)

    port = free_port()
    log_path = os.path.join(tmp, "query.log")
    logf = open(log_path, "w")
    q = subprocess.Popen([STRATA, "query", f"--http-address=127.0.0.1:{port}", f"--grpc-address=127.0.0.1:{free_port()}",
                          f"--http.config={web}", "--log.level=debug"], stdout=logf, stderr=subprocess.STDOUT)
    procs.append(q)
    wait_until(lambda: curl(port=port)[1] == 200, q, "strata query over HTTPS")

    def basic_auth():
        rc, code, body = curl("-D", "-", port=port)
        assert code == 200 and "X-Content-Type-Options: nosniff" in body, (code, body)
        rc, code, body = curl("-D", "-", port=port, user="alice:wrong-password")
        assert code == 401 and "WWW-Authenticate: Basic" in body, (code, body)
        rc, code, body = curl("-D", "-", port=port, user="mallory:" + PASSWORD)
        assert code == 401, (code, body)
        rc, code, body = curl(port=port, user=None, url_path="/metrics")
        assert code == 401, (code, body)
        rc, code, body = curl(port=port, url_path="/api/v1/query?query=vector(7)")
        assert code == 200 and json.loads(body)["data"]["result"][0]["value"][1] == "7", body
    h.check("basic_auth_curl", basic_auth)

    def plaintext_refused():
        r = subprocess.run(["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{port}/-/healthy"], capture_output=True)
        assert r.returncode != 0, "plain HTTP was answered on the TLS port"
        assert curl(port=port)[1] == 200, "server stopped serving after a plaintext client"
    h.check("plaintext_refused", plaintext_refused)

    def promtool_query():
        env = dict(os.environ, SSL_CERT_FILE=os.path.join(certs, "ca.crt"))
        url = f"https://alice:{urllib.parse.quote(PASSWORD)}@127.0.0.1:{port}"
        r = subprocess.run(["promtool", "query", "instant", url, "vector(42)"], capture_output=True, text=True, env=env,
                           timeout=30)
        assert r.returncode == 0 and "=> 42" in r.stdout, (r.returncode, r.stdout, r.stderr)
        r = subprocess.run(["promtool", "query", "instant", f"https://alice:nope@127.0.0.1:{port}", "vector(42)"],
                           capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode != 0 and "401" in (r.stdout + r.stderr), (r.returncode, r.stdout, r.stderr)
    h.check("promtool_query_https_basic_auth", promtool_query)

    def prometheus_scrapes():
        pport = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
- job_name: strata
  scheme: https
  tls_config: {{ca_file: {certs}/ca.crt}}
  basic_auth: {{username: alice, password: "{PASSWORD}"}}
  static_configs: [{{targets: ['127.0.0.1:{port}']}}]
- job_name: strata_wrong_password
  scheme: https
  tls_config: {{ca_file: {certs}/ca.crt}}
  basic_auth: {{username: alice, password: wrong}}
  static_configs: [{{targets: ['127.0.0.1:{port}']}}]
""")
        plog = open(os.path.join(tmp, "prometheus.log"), "w")
        p = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                              f"--web.listen-address=127.0.0.1:{pport}"], stdout=plog, stderr=subprocess.STDOUT)
        procs.append(p)
        ups = {}

        def both_scraped():
            import urllib.request
            r = json.load(urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/v1/query?query=up", timeout=2))
            for s in r["data"]["result"]:
                ups[s["metric"]["job"]] = s["value"][1]
            return len(ups) == 2
        wait_until(both_scraped, p, "prometheus scraping", timeout=40)
        # the first scrape may race the target's start: wait for the good job to turn up
        wait_until(lambda: both_scraped() and ups["strata"] == "1", p, "prometheus up", timeout=20)
        assert ups == {"strata": "1", "strata_wrong_password": "0"}, ups
        stop(p)
    h.check("prometheus_scrapes_https_basic_auth", prometheus_scrapes)

    def client_certs_required():
        write_web(client_auth="RequireAndVerifyClientCert")
        # picked up within a second or two, without a restart
        def refused_without_cert():
            try:
                get_with_client_cert(port, None, None)
                return False
            except (ssl.SSLError, ConnectionError, OSError):
                return True
        wait_until(refused_without_cert, q, "client certificates required", timeout=10)
        assert get_with_client_cert(port, "client.crt", "client.key") == "200"
        try:
            get_with_client_cert(port, "untrusted-client.crt", "untrusted-client.key")
            raise AssertionError("an untrusted client certificate was accepted")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        rc, code, _ = curl(port=port, extra=("--cert", os.path.join(certs, "client.crt"), "--key",
                                             os.path.join(certs, "client.key")))
        assert code == 200, code
        rc, code, _ = curl(port=port)
        assert rc != 0, "curl without a client certificate got through"
        write_web()
        wait_until(lambda: curl(port=port)[1] == 200, q, "client certificates optional again", timeout=10)
    h.check("client_cert_required_reloaded", client_certs_required)

    def cert_rotation():
        assert served_cn(port) == "strata-server"
        for ext in ("key", "crt"):
            tmpf = os.path.join(certs, "server." + ext + ".new")
            shutil.copy(os.path.join(certs, "server2." + ext), tmpf)
            os.replace(tmpf, os.path.join(certs, "server." + ext))
        wait_until(lambda: served_cn(port) == "strata-server-2", q, "rotated certificate served", timeout=10)
        assert curl(port=port)[1] == 200
    h.check("certificate_rotation_without_restart", cert_rotation)

    def flood():
        stop_at = time.time() + 6
        half_open = []
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            half_open.append(s)
        # a few that send a partial ClientHello and stall
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            half_open.append(s)
        handshakes = [0]

        def handshaker():
            ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
            while time.time() < stop_at:
                try:
                    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                        server_hostname="localhost")
                    s.close()
                    handshakes[0] += 1
                except OSError:
                    pass
        ts = [threading.Thread(target=handshaker) for _ in range(8)]
        for t in ts:
            t.start()
        worst = 0.0
        n = 0
        while time.time() < stop_at:
            t0 = time.time()
            rc, code, _ = curl(port=port, url_path="/api/v1/query?query=vector(1)")
            assert code == 200, f"request during the flood failed: curl rc={rc} code={code}"
            worst = max(worst, time.time() - t0)
            n += 1
        for t in ts:
            t.join()
        print(f"flood: {handshakes[0]} full handshakes by 8 threads, {len(half_open)} half-open connections; "
              f"{n} requests served, slowest {worst:.2f}s")
        assert handshakes[0] > 50, handshakes[0]
        assert worst < 3.0, f"a request took {worst:.2f}s during the flood"

        # half-open connections are closed by the server after the handshake timeout (10s)
        def closed_by_server(s):
            s.settimeout(0.2)
            try:
                return s.recv(1) == b""
            except socket.timeout:
                return False
            except OSError:
                return True
        wait_until(lambda: all(closed_by_server(s) for s in half_open), q, "half-open connections closed", timeout=20)
        for s in half_open:
            s.close()
    h.check("handshake_flood_and_half_open", flood)

    def password_not_logged():
        logf.flush()
        text = open(log_path).read()
        assert PASSWORD not in text and "wrong-password" not in text, "a password is in the log"
        assert "basic auth failed" in text and "TLS handshake failed" in text, "failures are not logged at debug"
    h.check("password_not_logged", password_not_logged)
    h.result("still_alive", q.poll() is None, "strata query exited")
finally:
    for p in procs:
        stop(p)
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if h.failed else 0)
