#!/usr/bin/env python3
"""S3 over HTTPS with a private CA (Thanos's objstore http_config.tls_config): the project's S3 server
(scripts/s3-server, OpenStack Swift + s3api) serving HTTPS with a certificate from a test CA made with
the openssl command (lib_tls.py).

- bucket tools with tls_config.ca_file: upload-blocks, ls, verify work
- without the CA, or with another CA: a clear "SSL certificate problem" error and a non-zero exit
- insecure_skip_verify: works without the CA
- tls_config.server_name: the certificate must name it (localhost works, another name fails) while
  the connection still goes to the endpoint
- a store gateway with ca_file serves the block over StoreAPI to a querier; without the CA it fails to
  start with the TLS error
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_until  # noqa: E402
from lib_tls import make_certs  # noqa: E402

STRATA = os.environ.get("STRATA_BIN", "build/strata")
ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
S3_CTL = os.path.join(ROOT, "scripts", "s3-server")
h = Harness("tls_objstore")
tmp = tempfile.mkdtemp(prefix="strata-tls-s3.")
certs = make_certs(os.path.join(tmp, "certs"))
s3_env = dict(os.environ, S3_PORT=str(free_port()), S3_DATA_DIR=os.path.join(tmp, "s3"),
              S3_TLS_CERT=os.path.join(certs, "server.crt"), S3_TLS_KEY=os.path.join(certs, "server.key"))
procs = []
NOW = int(time.time())


def objstore(tls_lines):
    return ("type: S3\nconfig:\n"
            f"  bucket: {env['S3_BUCKET']}\n  endpoint: {env['S3_ENDPOINT'][len('https://'):]}\n"
            f"  region: {env['S3_REGION']}\n  access_key: {env['S3_ACCESS_KEY']}\n"
            f"  secret_key: {env['S3_SECRET_KEY']}\n" + "".join("  " + line + "\n" for line in tls_lines))


def tool(args, tls_lines, timeout=60):
    return subprocess.run([STRATA, "tools", "bucket", *args, "--objstore.config=" + objstore(tls_lines)],
                          capture_output=True, text=True, timeout=timeout)


CA = f"http_config: {{tls_config: {{ca_file: {certs}/ca.crt}}}}"
try:
    r = subprocess.run([S3_CTL, "start"], env=s3_env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        h.result("s3_server_https_start", False, r.stderr[-600:])
        sys.exit(1)
    env = {}
    for line in r.stdout.splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        env[k] = v
    h.result("s3_server_https_start", env["S3_ENDPOINT"].startswith("https://"), env["S3_ENDPOINT"])

    blocks = os.path.join(tmp, "blocks")
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE tls_s3_metric gauge\n")
        for i in range(60):
            f.write(f'tls_s3_metric{{job="s3"}} {i} {NOW - 3600 + i * 60}\n')
        f.write("# EOF\n")
    os.makedirs(blocks)
    r = subprocess.run([STRATA, "tools", "block", "write", "--quiet", "--label=source=s3", om, blocks],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ulid = os.listdir(blocks)[0]

    def with_ca():
        r = tool(["upload-blocks", f"--path={blocks}", "--label=source=\"s3\""], [CA])
        assert r.returncode == 0, r.stderr
        r = tool(["ls"], [CA])
        assert r.returncode == 0 and ulid in r.stdout, (r.stdout, r.stderr)
        r = tool(["verify"], [CA])
        assert r.returncode == 0, r.stderr
    h.check("bucket_tools_with_ca_file", with_ca)

    def without_ca():
        for lines in ([], [f"http_config: {{tls_config: {{ca_file: {certs}/untrusted-ca.crt}}}}"]):
            r = tool(["ls"], lines)
            assert r.returncode != 0 and "SSL certificate problem" in r.stderr, (lines, r.returncode, r.stderr)
    h.check("refused_without_the_ca", without_ca)

    def skip_verify():
        r = tool(["ls"], ["http_config: {insecure_skip_verify: true}"])
        assert r.returncode == 0 and ulid in r.stdout, r.stderr
    h.check("insecure_skip_verify", skip_verify)

    def server_name():
        r = tool(["ls"], [f"http_config: {{tls_config: {{ca_file: {certs}/ca.crt, server_name: localhost}}}}"])
        assert r.returncode == 0 and ulid in r.stdout, r.stderr
        r = tool(["ls"], [f"http_config: {{tls_config: {{ca_file: {certs}/ca.crt, server_name: wrong.example}}}}"])
        assert r.returncode != 0 and "wrong.example" in r.stderr, (r.returncode, r.stderr)
    h.check("tls_config_server_name", server_name)

    def store_gateway():
        sh, sg = free_port(), free_port()
        log = open(os.path.join(tmp, "store.log"), "w")
        st = subprocess.Popen([STRATA, "store", f"--http-address=127.0.0.1:{sh}", f"--grpc-address=127.0.0.1:{sg}",
                               f"--data-dir={tmp}/store", "--objstore.config=" + objstore([CA])],
                              stdout=log, stderr=subprocess.STDOUT)
        procs.append(st)
        qh = free_port()
        qlog = open(os.path.join(tmp, "query.log"), "w")
        q = subprocess.Popen([STRATA, "query", f"--http-address=127.0.0.1:{qh}", f"--grpc-address=127.0.0.1:{free_port()}",
                              f"--endpoint=127.0.0.1:{sg}"], stdout=qlog, stderr=subprocess.STDOUT)
        procs.append(q)

        def answered():
            u = f"http://127.0.0.1:{qh}/api/v1/query?" + urllib.parse.urlencode({"query": "tls_s3_metric", "time": NOW})
            with urllib.request.urlopen(u, timeout=10) as resp:
                res = json.load(resp)["data"]["result"]
            return len(res) == 1 and res[0]["value"][1] == "59"
        wait_until(answered, st, "the store gateway serving the block from S3 over HTTPS", timeout=150)
        stop(q)
        stop(st)
        # without the CA the gateway cannot read the bucket: it says why and never turns ready
        sh2 = free_port()
        log_path = os.path.join(tmp, "store2.log")
        st2 = subprocess.Popen([STRATA, "store", f"--http-address=127.0.0.1:{sh2}",
                                f"--grpc-address=127.0.0.1:{free_port()}", f"--data-dir={tmp}/store2",
                                "--objstore.config=" + objstore([])], stdout=open(log_path, "w"),
                               stderr=subprocess.STDOUT)
        procs.append(st2)
        wait_until(lambda: "SSL certificate problem" in open(log_path).read(), st2, "the sync error in the log")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{sh2}/-/ready", timeout=5)
            raise AssertionError("ready without a readable bucket")
        except urllib.error.HTTPError as e:
            assert e.code == 503, e.code
        stop(st2)
    h.check("store_gateway_over_https_s3", store_gateway)
finally:
    for p in procs:
        stop(p)
    subprocess.run([S3_CTL, "stop", "--purge"], env=s3_env, capture_output=True, timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if h.failed else 0)
