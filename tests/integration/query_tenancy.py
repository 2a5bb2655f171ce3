#!/usr/bin/env python3
"""The querier's tenancy (reference thanos.md §1.6 querier flags, §6.7): --query.tenant-header,
--query.default-tenant-id, --query.tenant-label-name, --query.enforce-tenancy, --query.tenant-certificate-field.

A strata receive holds series of three tenants (remote-written with THANOS-TENANT: team-a, team-b and none, i.e.
default-tenant); its StoreAPI labels each tenant's series tenant_id="<tenant>".
- a querier with --query.enforce-tenancy: with THANOS-TENANT: team-a, /api/v1/query, /api/v1/query_range,
  /api/v1/series, /api/v1/labels and /api/v1/label/<name>/values see only team-a's series and values; team-b
  only its own; without the header only default-tenant's; a matcher of the query on tenant_id never widens
  that ({tenant_id="team-b"}, {tenant_id!="team-a"} empty, {tenant_id=~".+"} only team-a); a tenant name with a
  path separator is refused (400)
- other names: --query.tenant-header=X-Scope-OrgID, --query.default-tenant-id=team-b,
  --query.tenant-label-name=tenant_id still injected with the header of that name
- without --query.enforce-tenancy every series is visible whatever the header says
- --query.tenant-certificate-field=organization behind an HTTPS --http.config with client certificates: the
  client certificate's O= is the tenant (the header is ignored)
- the tenant reaches the stores as gRPC metadata thanos-tenant (a python3-grpcio store records it) on Series,
  LabelNames and LabelValues, with and without --query.enforce-tenancy
- bad flag values exit 2
"""
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, stop, wait_ready, wait_until  # noqa: E402
from lib_receive import BIN, Receiver, field, varint, write_request  # noqa: E402
from lib_tls import client_cert, make_certs  # noqa: E402

H = Harness("query_tenancy")
tmp = tempfile.mkdtemp(prefix="strata-tenancy-")
procs = []


def querier(name, endpoints, extra=()):
    hp = free_port()
    log = open(os.path.join(tmp, f"{name}.log"), "a")
    p = subprocess.Popen([BIN, "query", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{free_port()}",
                          *[f"--endpoint={e}" for e in endpoints], *extra], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p, hp


def get(port, path, params=None, headers=None, scheme="http", ctx=None):
    """(status, parsed JSON body)"""
    url = f"{scheme}://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def jobs(port, query, headers=None, **kw):
    """sorted job values of an instant query's vector"""
    st, b = get(port, "/api/v1/query", {"query": query}, headers, **kw)
    assert st == 200 and b["status"] == "success", (st, b)
    return sorted(s["metric"].get("job", "") for s in b["data"]["result"])


def range_jobs(port, query, headers=None):
    now = time.time()
    st, b = get(port, "/api/v1/query_range", {"query": query, "start": now - 120, "end": now, "step": 15}, headers)
    assert st == 200 and b["status"] == "success", (st, b)
    return sorted(s["metric"].get("job", "") for s in b["data"]["result"])


def series_jobs(port, match, headers=None):
    st, b = get(port, "/api/v1/series", {"match[]": match}, headers)
    assert st == 200, (st, b)
    return sorted(s.get("job", "") for s in b["data"])


def values(port, name, headers=None, match=None):
    st, b = get(port, f"/api/v1/label/{name}/values", {"match[]": match} if match else None, headers)
    assert st == 200, (st, b)
    return b["data"]


def names(port, headers=None):
    st, b = get(port, "/api/v1/labels", None, headers)
    assert st == 200, (st, b)
    return b["data"]


class FakeStore:
    """A StoreAPI that answers nothing (Info: a time range, no labels) and records each call's thanos-tenant."""

    def __init__(self):
        import grpc
        from concurrent import futures
        self.seen = []  # (method, tenant)
        store_info = varint(1 << 3) + varint(1) + varint(2 << 3) + varint(1 << 60)
        info = field(2, b"store") + field(3, store_info)

        def handler(method, stream):
            def fn(req, ctx):
                md = dict(ctx.invocation_metadata())
                self.seen.append((method, md.get("thanos-tenant")))
                return iter(()) if stream else (info if method == "Info" else b"")
            if stream:
                return grpc.unary_stream_rpc_method_handler(fn)
            return grpc.unary_unary_rpc_method_handler(fn)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("thanos.Store", {"Series": handler("Series", True),
                                                                  "LabelNames": handler("LabelNames", False),
                                                                  "LabelValues": handler("LabelValues", False)}),
            grpc.method_handlers_generic_handler("thanos.info.Info", {"Info": handler("Info", False)})))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def tenants(self, method):
        return [t for m, t in self.seen if m == method]


A = {"THANOS-TENANT": "team-a"}
B = {"THANOS-TENANT": "team-b"}

try:
    rcv = Receiver(tmp).start()
    procs.append(rcv.proc)
    now_ms = int(time.time() * 1000)
    samples = [(now_ms - 60000 + 15000 * i, float(i)) for i in range(5)]
    for tenant, job, extra in (("team-a", "a", "only_a"), ("team-b", "b", "only_b"), (None, "d", "only_d")):
        body = write_request([([("__name__", "tenancy_up"), ("job", job), (extra, "1")], samples)])
        st, text = rcv.post(body, {"THANOS-TENANT": tenant} if tenant else None)
        assert st == 200, (tenant, st, text)
    R = f"127.0.0.1:{rcv.grpc}"
    fake = FakeStore()
    F = f"127.0.0.1:{fake.port}"

    qe, e_http = querier("enforced", [R, F], ["--query.enforce-tenancy"])
    qn, n_http = querier("open", [R, F])
    qc, c_http = querier("custom", [R], ["--query.enforce-tenancy", "--query.tenant-header=X-Scope-OrgID",
                                         "--query.default-tenant-id=team-b", "--query.tenant-label-name=tenant_id"])
    for p, port, name in ((qe, e_http, "enforced"), (qn, n_http, "open"), (qc, c_http, "custom")):
        wait_ready(port, p, name)
    wait_until(lambda: jobs(n_http, "tenancy_up") == ["a", "b", "d"], qn, "the three tenants' series", 30)

    def enforced_query():
        assert jobs(e_http, "tenancy_up", A) == ["a"], jobs(e_http, "tenancy_up", A)
        assert jobs(e_http, "tenancy_up", B) == ["b"]
        assert jobs(e_http, "tenancy_up") == ["d"]  # default-tenant
        assert jobs(e_http, "sum by (job, tenant_id) (rate(tenancy_up[2m]))", A) == ["a"]
        assert jobs(e_http, "tenancy_up or on() vector(1)", B) == ["b"]
        st, b = get(e_http, "/api/v1/query", {"query": "tenancy_up"}, A)
        assert [s["metric"]["tenant_id"] for s in b["data"]["result"]] == ["team-a"], b
        # POST form too
        req = urllib.request.Request(f"http://127.0.0.1:{e_http}/api/v1/query", method="POST", headers=B,
                                     data=urllib.parse.urlencode({"query": "count(tenancy_up)"}).encode())
        with urllib.request.urlopen(req, timeout=30) as r:
            res = json.load(r)["data"]["result"]
        assert len(res) == 1 and res[0]["value"][1] == "1", res
    H.check("enforced_instant_query_sees_own_tenant", enforced_query)

    def enforced_range():
        assert range_jobs(e_http, "tenancy_up", A) == ["a"]
        assert range_jobs(e_http, "max_over_time(tenancy_up[1m])", B) == ["b"]
        assert range_jobs(e_http, "tenancy_up") == ["d"]
    H.check("enforced_range_query_sees_own_tenant", enforced_range)

    def enforced_metadata():
        assert series_jobs(e_http, "tenancy_up", A) == ["a"]
        assert series_jobs(e_http, '{job=~".+"}', B) == ["b"]
        assert values(e_http, "job", A) == ["a"], values(e_http, "job", A)
        assert values(e_http, "job") == ["d"]
        assert values(e_http, "tenant_id", B) == ["team-b"], values(e_http, "tenant_id", B)
        assert values(e_http, "job", A, match="tenancy_up") == ["a"]
        la = names(e_http, A)
        assert "only_a" in la and "only_b" not in la and "only_d" not in la, la
        lb = names(e_http, B)
        assert "only_b" in lb and "only_a" not in lb, lb
    H.check("enforced_series_labels_values_see_own_tenant", enforced_metadata)

    def conflicting_matchers():
        assert jobs(e_http, 'tenancy_up{tenant_id="team-b"}', A) == []
        assert jobs(e_http, 'tenancy_up{tenant_id!="team-a"}', A) == []
        assert jobs(e_http, 'tenancy_up{tenant_id=~".+"}', A) == ["a"]
        assert jobs(e_http, 'tenancy_up{tenant_id=~"team-.*|default-tenant"}', B) == ["b"]
        assert series_jobs(e_http, '{tenant_id="team-a"}', B) == []
        assert values(e_http, "job", B, match='{tenant_id="team-a"}') == []
        st, b = get(e_http, "/api/v1/query", {"query": "tenancy_up"}, {"THANOS-TENANT": "../team-a"})
        assert st == 400 and b.get("errorType") == "bad_data", (st, b)
    H.check("tenant_matcher_in_query_does_not_widen", conflicting_matchers)

    def other_names():
        assert jobs(c_http, "tenancy_up", {"X-Scope-OrgID": "team-a"}) == ["a"]
        assert jobs(c_http, "tenancy_up") == ["b"]  # --query.default-tenant-id=team-b
        assert series_jobs(c_http, "tenancy_up", {"X-Scope-OrgID": "default-tenant"}) == ["d"]
    H.check("custom_header_and_default_tenant", other_names)

    def not_enforced():
        for h in (None, A, B):
            assert jobs(n_http, "tenancy_up", h) == ["a", "b", "d"], h
            assert series_jobs(n_http, "tenancy_up", h) == ["a", "b", "d"]
            assert values(n_http, "job", h) == ["a", "b", "d"]
            assert values(n_http, "tenant_id", h) == ["default-tenant", "team-a", "team-b"]
    H.check("without_enforce_tenancy_everything_visible", not_enforced)

    def certificate_field():
        certs = make_certs(os.path.join(tmp, "certs"))
        crt_a, key_a = client_cert(certs, "tenant-a", "/O=team-a/OU=ops/CN=prom-a")
        crt_n, key_n = client_cert(certs, "no-org", "/CN=no-org")
        web = os.path.join(tmp, "web.yml")
        with open(web, "w") as f:
            f.write(f"""tls_server_config:
  cert_file: {certs}/server.crt
  key_file: {certs}/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {certs}/ca.crt
""")
        qt, t_https = querier("cert", [R], ["--query.enforce-tenancy", "--query.tenant-certificate-field=organization",
                                            f"--http.config={web}"])

        def ctx(crt, key):
            c = ssl.create_default_context(cafile=f"{certs}/ca.crt")
            c.load_cert_chain(crt, key)
            return c
        ca_ = ctx(crt_a, key_a)
        wait_until(lambda: jobs(t_https, "tenancy_up", scheme="https", ctx=ca_) == ["a"], qt,
                   "the certificate's tenant over HTTPS", 30)
        # the header is ignored when the certificate decides
        assert jobs(t_https, "tenancy_up", B, scheme="https", ctx=ca_) == ["a"]
        st, b = get(t_https, "/api/v1/query", {"query": "tenancy_up"}, scheme="https", ctx=ctx(crt_n, key_n))
        assert st == 400 and "organization" in b.get("error", ""), (st, b)
    H.check("tenant_from_client_certificate", certificate_field)

    def tenant_metadata():
        for port in (e_http, n_http):
            for h, want in ((A, "team-a"), (B, "team-b"), (None, "default-tenant")):
                fake.seen.clear()
                jobs(port, "tenancy_up", h)
                series_jobs(port, "tenancy_up", h)
                names(port, h)
                values(port, "job", h)
                for m in ("Series", "LabelNames", "LabelValues"):
                    assert fake.tenants(m) and set(fake.tenants(m)) == {want}, (port, m, want, fake.seen)
    H.check("tenant_sent_to_stores_as_grpc_metadata", tenant_metadata)

    def bad_flags():
        for flag, want in (("--query.tenant-certificate-field=serial", "--query.tenant-certificate-field"),
                           ("--query.tenant-label-name=1bad", "--query.tenant-label-name"),
                           ("--query.tenant-header=", "--query.tenant-header")):
            r = subprocess.run([BIN, "query", flag, "--http-address=127.0.0.1:0", "--grpc-address=127.0.0.1:0"],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and want in r.stderr, (flag, r.returncode, r.stderr)
    H.check("bad_tenancy_flags_exit_2", bad_flags)
except Exception as e:  # noqa: BLE001 - setup failures are test failures
    H.result("setup", False, f"{type(e).__name__}: {e}")
finally:
    for p in procs:
        stop(p)
    if "fake" in globals():
        fake.server.stop(0)
sys.exit(1 if H.failed else 0)
