#!/usr/bin/env python3
"""gRPC over mutual TLS between Strata components and with a real gRPC stack (Debian's python3-grpcio),
with Thanos's flags. Certificates come from the openssl command (lib_tls.py): a CA, server and client
certificates, and a client certificate from a CA nobody trusts.

- a store gateway (a block written by `strata tools block write`) and a sidecar in front of a real
  Prometheus 2.42 serve StoreAPI over mutual TLS (--grpc-server-tls-cert/-key/-client-ca); that
  Prometheus serves HTTPS with basic auth and the sidecar reaches it with --prometheus.http-client
  (basic_auth, tls_config; a wrong password or a missing CA: the reason logged, never ready); a querier
  with --grpc-client-tls-secure/-ca/-cert/-key answers a query with data from both, and a second
  querier reaches the first over mutual TLS too
- refused, while the good querier keeps being served: a querier without a client certificate, with
  the untrusted one, speaking plaintext h2c, and one checking the wrong server name; each says why
  in /api/v1/stores; --grpc-client-tls-skip-verify still gets through with the right certificate
- python3-grpcio with ssl_channel_credentials (client certificate) calls Info and Series; without a
  client certificate the call fails UNAVAILABLE
- --endpoint.sd-config: default_client_config and per-endpoint client_config (tls_config, server_name) in one
  querier; an endpoint whose own config has no client certificate is refused while the others answer;
  bad configs (group: true, a DNS endpoint with its own client_config, a missing file, a typo) exit 2
- the server certificate replaced on disk: new connections get it without a restart
- bad flags/files: a clear error and exit 2, also under --check-config
"""
import json
import os
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_until  # noqa: E402
from lib_tls import bcrypt_hash, make_certs  # noqa: E402

STRATA = os.environ.get("STRATA_BIN", "build/strata")
ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
h = Harness("tls_grpc")
tmp = tempfile.mkdtemp(prefix="strata-tls-grpc.")
certs = make_certs(os.path.join(tmp, "certs"))


def C(name):
    return os.path.join(certs, name)


SERVER_TLS = [f"--grpc-server-tls-cert={C('server.crt')}", f"--grpc-server-tls-key={C('server.key')}",
              f"--grpc-server-tls-client-ca={C('ca.crt')}"]
CLIENT_TLS = ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('ca.crt')}",
              f"--grpc-client-tls-cert={C('client.crt')}", f"--grpc-client-tls-key={C('client.key')}"]

procs = []


def start(name, args):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen([STRATA, *args], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.load(r)


def query(port, q, at=None):
    """instant query; the block's metric at NOW, Prometheus's live data at the current time"""
    at = at or (NOW if "tls_block_metric" in q else time.time())
    return get(port, "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": str(at)}))["data"]["result"]


def stores(port):
    """address -> lastError ("" when healthy)"""
    out = {}
    for group in get(port, "/api/v1/stores")["data"].values():
        for s in group:
            out[s["name"]] = s.get("lastError") or ""
    return out


def querier(name, endpoints, tls_args, extra=()):
    hp, gp = free_port(), free_port()
    p = start(name, ["query", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{gp}",
                     *[f"--endpoint={e}" for e in endpoints], *tls_args, *extra])
    return p, hp, gp


NOW = int(time.time())
try:
    # ---- a block in a FILESYSTEM bucket, served by a store gateway over mutual TLS
    bucket = os.path.join(tmp, "bucket")
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE tls_block_metric gauge\n")
        for i in range(60):
            f.write(f'tls_block_metric{{job="blocks"}} {i} {NOW - 3600 + i * 60}\n')
        f.write("# EOF\n")
    os.makedirs(bucket)
    r = subprocess.run([STRATA, "tools", "block", "write", "--quiet", "--label=source=block", om, bucket],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    objstore = f"--objstore.config=type: FILESYSTEM\nconfig: {{directory: {bucket}}}\n"
    store_http, store_grpc = free_port(), free_port()
    store = start("store", ["store", f"--http-address=127.0.0.1:{store_http}", f"--grpc-address=127.0.0.1:{store_grpc}",
                            objstore, f"--data-dir={tmp}/store-data", *SERVER_TLS])

    # ---- a real Prometheus serving HTTPS with basic auth (its --web.config.file), behind a sidecar
    # that reaches it with --prometheus.http-client (basic_auth, tls_config) and serves StoreAPI over mTLS
    prom_port = free_port()
    with open(os.path.join(tmp, "prom-web.yml"), "w") as f:
        f.write(f"tls_server_config: {{cert_file: {C('server.crt')}, key_file: {C('server.key')}}}\n"
                f"basic_auth_users: {{prom: '{bcrypt_hash('prom-pass')}'}}\n")
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write(f"""global: {{scrape_interval: 1s, external_labels: {{source: sidecar}}}}
scrape_configs:
- job_name: prometheus
  scheme: https
  tls_config: {{ca_file: {C('ca.crt')}}}
  basic_auth: {{username: prom, password: prom-pass}}
  static_configs: [{{targets: ['localhost:{prom_port}']}}]
""")
    plog = open(os.path.join(tmp, "prometheus.log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/prom",
                             f"--web.listen-address=127.0.0.1:{prom_port}", f"--web.config.file={tmp}/prom-web.yml",
                             "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h"],
                            stdout=plog, stderr=subprocess.STDOUT)
    procs.append(prom)
    PROM_CLIENT = f"basic_auth: {{username: prom, password: prom-pass}}\ntls_config: {{ca_file: {C('ca.crt')}}}\n"
    side_http, side_grpc = free_port(), free_port()
    sidecar = start("sidecar", ["sidecar", f"--http-address=127.0.0.1:{side_http}",
                                f"--grpc-address=127.0.0.1:{side_grpc}", f"--prometheus.url=https://localhost:{prom_port}",
                                f"--prometheus.http-client={PROM_CLIENT}", f"--tsdb.path={tmp}/prom", *SERVER_TLS])

    eps = [f"127.0.0.1:{store_grpc}", f"127.0.0.1:{side_grpc}"]
    q1, q1_http, q1_grpc = querier("query1", eps, CLIENT_TLS + SERVER_TLS)

    def both_answer():
        def ok():
            st = stores(q1_http)
            if len(st) != 2 or any(st.values()):
                return False
            block = query(q1_http, "tls_block_metric")
            up = query(q1_http, 'up{job="prometheus"}')
            return len(block) == 1 and len(up) == 1
        wait_until(ok, q1, "querier answering from the store gateway and the sidecar over mTLS", timeout=60)
        r = query(q1_http, "tls_block_metric")
        assert r[0]["metric"] == {"__name__": "tls_block_metric", "job": "blocks", "source": "block"}, r
        assert r[0]["value"][1] == "59", r
        r = query(q1_http, 'up{job="prometheus"}')
        assert r[0]["metric"]["source"] == "sidecar" and r[0]["value"][1] == "1", r
    h.check("querier_store_sidecar_mtls", both_answer)

    def layered():
        q2, q2_http, _ = querier("query2", [f"127.0.0.1:{q1_grpc}"], CLIENT_TLS)
        wait_until(lambda: len(query(q2_http, "tls_block_metric")) == 1 and len(query(q2_http, "up")) == 1, q2,
                   "a querier over a querier over mTLS", timeout=40)
        stop(q2)
    h.check("querier_over_querier_mtls", layered)

    def endpoint_sd_config():
        # default_client_config (mTLS) for the store gateway, the sidecar's own client_config (mTLS,
        # server_name checked), and the first querier's own client_config without a client certificate:
        # refused by its mTLS server while the others answer
        cfg = f"""default_client_config:
  tls_config: {{ca_file: {C('ca.crt')}, cert_file: {C('client.crt')}, key_file: {C('client.key')}}}
endpoints:
  - address: 127.0.0.1:{store_grpc}
  - address: 127.0.0.1:{side_grpc}
    strict: true
    client_config:
      tls_config: {{ca_file: {C('ca.crt')}, cert_file: {C('client.crt')}, key_file: {C('client.key')}}}
      server_name: localhost
      compression: snappy
  - address: 127.0.0.1:{q1_grpc}
    client_config:
      tls_config: {{enabled: true, ca_file: {C('ca.crt')}}}
"""
        q3, q3_http, _ = querier("query-sd-config", [], [f"--endpoint.sd-config={cfg}"])
        try:
            def ok():
                st = stores(q3_http)
                return (len(st) == 3 and not st[f"127.0.0.1:{store_grpc}"] and not st[f"127.0.0.1:{side_grpc}"]
                        and st[f"127.0.0.1:{q1_grpc}"])
            wait_until(ok, q3, "per-endpoint TLS from --endpoint.sd-config", timeout=60)
            assert len(query(q3_http, "tls_block_metric")) == 1 and len(query(q3_http, 'up{job="prometheus"}')) == 1
        finally:
            stop(q3)
        for bad, want in (("endpoints: [{address: 'dns+localhost:1', client_config: {tls_config: {enabled: true}}}]",
                           "default_client_config"),
                          ("endpoints: [{address: '127.0.0.1:1', group: true}]", "group"),
                          ("endpoints: [{address: '127.0.0.1:1', client_config: {tls_config: {ca_file: /nonexistent.crt}}}]",
                           "/nonexistent.crt"),
                          ("endpoints: [{adress: '127.0.0.1:1'}]", "adress")):
            r = subprocess.run([STRATA, "query", f"--endpoint.sd-config={bad}", "--check-config"], capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 2 and want in r.stderr, (bad, r.returncode, r.stderr)
    h.check("endpoint_sd_config_per_endpoint_tls", endpoint_sd_config)

    def sidecar_refused_by_prometheus():
        # a wrong password, then no CA: the sidecar says why and never turns ready
        for name, client, want in (
                ("wrong_password", f"basic_auth: {{username: prom, password: nope}}\ntls_config: {{ca_file: {C('ca.crt')}}}\n",
                 "401"),
                ("no_ca", "basic_auth: {username: prom, password: prom-pass}\n", "SSL certificate problem")):
            hp = free_port()
            p = start("sidecar_" + name, ["sidecar", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{free_port()}",
                                          f"--prometheus.url=https://localhost:{prom_port}",
                                          f"--prometheus.http-client={client}", f"--tsdb.path={tmp}/prom",
                                          "--prometheus.ready_timeout=5m"])
            path = os.path.join(tmp, f"sidecar_{name}.log")
            wait_until(lambda: want in open(path).read(), p, f"the {name} sidecar's reason in its log", timeout=30)
            stop(p)
            assert "prom-pass" not in open(path).read(), "the password is in the log"
        r = subprocess.run([STRATA, "sidecar", "--check-config", "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0",
                            "--prometheus.http-client=basic_auth: {username: a, password: b}\nbearer_token: c\n"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "at most one of basic_auth and bearer_token" in r.stderr, r.stderr
        r = subprocess.run([STRATA, "sidecar", "--check-config", "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0",
                            "--prometheus.http-client=tls_config: {ca_file: /nonexistent/ca.crt}\n"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "/nonexistent/ca.crt" in r.stderr, r.stderr
    h.check("sidecar_to_prometheus_https_basic_auth", sidecar_refused_by_prometheus)

    def refused():
        bad = {
            "no_client_cert": ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('ca.crt')}"],
            "untrusted_client_cert": ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('ca.crt')}",
                                      f"--grpc-client-tls-cert={C('untrusted-client.crt')}",
                                      f"--grpc-client-tls-key={C('untrusted-client.key')}"],
            "plaintext": [],
            "wrong_server_name": CLIENT_TLS + ["--grpc-client-server-name=not-the-server.example"],
            "untrusted_server": ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('untrusted-ca.crt')}",
                                 f"--grpc-client-tls-cert={C('client.crt')}", f"--grpc-client-tls-key={C('client.key')}"],
        }
        qs = {k: querier("bad_" + k, [eps[0]], v) for k, v in bad.items()}
        skip, skip_http, _ = querier("skip_verify", [eps[0]], CLIENT_TLS + ["--grpc-client-server-name=wrong.example",
                                                                              "--grpc-client-tls-skip-verify"])
        errors = {}
        for k, (p, hp, _) in qs.items():
            def failed():
                st = stores(hp)
                errors[k] = st.get(eps[0], "")
                return errors[k] != ""
            wait_until(failed, p, f"the {k} querier's endpoint reported unhealthy", timeout=30)
            assert query(hp, "tls_block_metric") == [], k
        print("refusals:", json.dumps(errors, indent=1))
        assert "certificate verify failed" in errors["wrong_server_name"], errors
        assert "certificate verify failed" in errors["untrusted_server"], errors
        wait_until(lambda: len(query(skip_http, "tls_block_metric")) == 1, skip, "skip-verify querier", timeout=30)
        # the store still serves the good querier
        assert len(query(q1_http, "tls_block_metric")) == 1
        assert stores(q1_http)[eps[0]] == ""
        for p, _, _ in qs.values():
            stop(p)
        stop(skip)
        assert store.poll() is None and sidecar.poll() is None
    h.check("bad_clients_refused_server_keeps_serving", refused)

    def python_grpcio():
        import grpc
        gen = os.path.join(tmp, "pb")
        os.makedirs(gen)
        protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + gen] + protos,
                       check=True)
        sys.path.insert(0, gen)
        import info_pb2
        import storepb_rpc_pb2 as rpc
        import storepb_types_pb2 as types

        def read(n):
            with open(C(n), "rb") as f:
                return f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=read("ca.crt"), private_key=read("client.key"),
                                             certificate_chain=read("client.crt"))
        ch = grpc.secure_channel(f"localhost:{store_grpc}", creds)
        info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                              response_deserializer=info_pb2.InfoResponse.FromString)
        r = info(info_pb2.InfoRequest(), timeout=10)
        assert r.ComponentType == "store", r
        series = ch.unary_stream("/thanos.Store/Series", request_serializer=rpc.SeriesRequest.SerializeToString,
                                 response_deserializer=rpc.SeriesResponse.FromString)
        req = rpc.SeriesRequest(min_time=(NOW - 7200) * 1000, max_time=(NOW + 60) * 1000, matchers=[
            types.LabelMatcher(type=types.LabelMatcher.EQ, name="__name__", value="tls_block_metric")])
        got = [x.series for x in series(req, timeout=10) if x.WhichOneof("result") == "series"]
        assert len(got) == 1 and len(got[0].chunks) >= 1, got
        ch.close()
        # without a client certificate the server refuses the handshake
        ch = grpc.secure_channel(f"localhost:{store_grpc}", grpc.ssl_channel_credentials(root_certificates=read("ca.crt")))
        info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                              response_deserializer=info_pb2.InfoResponse.FromString)
        try:
            info(info_pb2.InfoRequest(), timeout=5)
            raise AssertionError("Info without a client certificate succeeded")
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
        ch.close()
        # the negotiated protocol is h2 (gRPC over TLS needs ALPN)
        ctx = ssl.create_default_context(cafile=C("ca.crt"))
        ctx.load_cert_chain(C("client.crt"), C("client.key"))
        ctx.set_alpn_protocols(["h2"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", store_grpc), timeout=5),
                             server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    h.check("python_grpcio_mtls", python_grpcio)

    def rotation():
        def served_cn():
            ctx = ssl.create_default_context(cafile=C("ca.crt"))
            ctx.load_cert_chain(C("client.crt"), C("client.key"))
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", side_grpc), timeout=5),
                                 server_hostname="localhost") as s:
                return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        assert served_cn() == "strata-server"
        for ext in ("key", "crt"):
            shutil.copy(C("server2." + ext), C("server." + ext + ".new"))
            os.replace(C("server." + ext + ".new"), C("server." + ext))
        wait_until(lambda: served_cn() == "strata-server-2", sidecar, "rotated gRPC certificate", timeout=15)
    h.check("grpc_certificate_rotation", rotation)

    def bad_flags():
        base = ["query", "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0"]
        cases = [
            ([f"--grpc-server-tls-cert={C('server.crt')}"], "go together"),
            ([f"--grpc-server-tls-cert={C('server.crt')}", f"--grpc-server-tls-key={C('client.key')}"],
             "key values mismatch"),
            ([f"--grpc-server-tls-cert={tmp}/none.crt", f"--grpc-server-tls-key={C('server.key')}"], "none.crt"),
            (SERVER_TLS[:2] + ["--grpc-server-tls-min-version=1.4"], "1.4"),
            (["--grpc-client-tls-secure", f"--grpc-client-tls-ca={tmp}/none-ca.crt"], "none-ca.crt"),
            (["--grpc-client-tls-secure", f"--grpc-client-tls-cert={C('client.crt')}"], "both"),
        ]
        for extra, want in cases:
            for check_config in ([], ["--check-config"]):
                r = subprocess.run([STRATA, *base, *extra, *check_config], capture_output=True, text=True, timeout=30)
                assert r.returncode == 2 and want in r.stderr, (extra, check_config, r.returncode, r.stderr)
        for cmd in (["store", objstore], ["sidecar"]):
            r = subprocess.run([STRATA, *cmd, "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0",
                                "--check-config", *SERVER_TLS], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0 and "configuration OK" in r.stdout, (cmd, r.stderr)
            r = subprocess.run([STRATA, *cmd, "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0",
                                "--check-config", f"--grpc-server-tls-cert={C('server.crt')}",
                                f"--grpc-server-tls-key={C('client.key')}"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and "key values mismatch" in r.stderr, (cmd, r.stderr)
    h.check("bad_tls_flags_exit_2", bad_flags)
    h.result("all_still_running", all(p.poll() is None for p in (store, sidecar, q1)), "a server exited")
finally:
    for p in procs:
        stop(p)
    if not os.environ.get("KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", tmp)
sys.exit(1 if h.failed else 0)
