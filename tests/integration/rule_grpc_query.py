#!/usr/bin/env python3
"""The ruler querying over gRPC (--grpc-query-endpoint, thanos.Query/Query) with mutual TLS, and the querier's
gRPC Query API seen by a real gRPC stack (Debian's python3-grpcio). Certificates come from the openssl command
(lib_tls.py).

A Prometheus 2.42 scrapes gauges the test sets; a strata sidecar serves them to a querier Q whose gRPC port needs
a client certificate (--grpc-server-tls-cert/-key/-client-ca).
- a ruler with --grpc-query-endpoint=Q and --grpc-client-tls-secure/-ca/-cert/-key evaluates recording rules
  (vector and scalar results) and an alert; its results, read back through a querier over its StoreAPI, are
  the right values; the alert fires for the right series
- python3-grpcio with the client certificate: thanos.Query/Query and /QueryRange answer what /api/v1/query and
  /api/v1/query_range answer (labels, timestamps, values), also with response_batch_size and storeMatchers
  (as storeMatch[]); Info announces the Query API; a sharded query is UNIMPLEMENTED; without a client certificate the call is refused (UNAVAILABLE); a parse error is INVALID_ARGUMENT
- a ruler without a client certificate cannot evaluate (its rules report the error) and Q keeps serving others
- one HA group: a ruler with an HTTP querier (no stores: answers 0) and Q over gRPC records the HTTP answer
  (HTTP preferred); the HTTP querier stopped, the same ruler records Q's answer over gRPC; a ruler whose first
  gRPC endpoint is dead evaluates through the second
- bad --grpc-query-endpoint values: exit 2 with a message
- a querier's --endpoint.sd-config-file replaced on disk: the new endpoints (with the new file's client TLS)
  replace the old ones without a restart; a kept address whose client_config changed is dialled anew (no
  client certificate: Q refuses it; the certificate back: healthy; compression added while queries run: the
  connection is replaced and no query fails); a broken file is logged and the previous endpoints stay
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib_harness import Harness, free_port, wait_ready, wait_until  # noqa: E402
from lib_rule import BIN, ROOT, Procs, Target, prometheus, sidecar  # noqa: E402
from lib_tls import make_certs  # noqa: E402

H = Harness("rule_grpc_query")
tmp = tempfile.mkdtemp(prefix="strata-rule-grpcq-")
certs = make_certs(os.path.join(tmp, "certs"))
procs = Procs(tmp)
tgt = Target()
tgt.set('grpcq_load{host="a"}', 2)
tgt.set('grpcq_load{host="b"}', 5)


def C(name):
    return os.path.join(certs, name)


SERVER_TLS = [f"--grpc-server-tls-cert={C('server.crt')}", f"--grpc-server-tls-key={C('server.key')}",
              f"--grpc-server-tls-client-ca={C('ca.crt')}"]
CLIENT_TLS = ["--grpc-client-tls-secure", f"--grpc-client-tls-ca={C('ca.crt')}",
              f"--grpc-client-tls-cert={C('client.crt')}", f"--grpc-client-tls-key={C('client.key')}"]

RULES = os.path.join(tmp, "grpcq.rules.yml")
with open(RULES, "w") as f:
    f.write("""groups:
- name: grpcq
  interval: 1s
  rules:
  - record: grpcq:load:sum
    expr: sum(grpcq_load)
  - record: grpcq:hosts:count
    expr: count(grpcq_load) or vector(0)
  - record: grpcq:hosts:scalar
    expr: scalar(count(grpcq_load)) * 10
  - alert: GrpcqHigh
    expr: grpcq_load > 3
""")


def get(port, path, params=None, timeout=30):
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def querier(name, endpoints, extra=()):
    hp, gp = free_port(), free_port()
    p = procs.start(name, [BIN, "query", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{gp}",
                           *[f"--endpoint={e}" for e in endpoints], *extra])
    wait_ready(hp, p, name)
    return p, hp, gp


def ruler(name, args):
    hp, gp = free_port(), free_port()
    p = procs.start(name, [BIN, "rule", f"--http-address=127.0.0.1:{hp}", f"--grpc-address=127.0.0.1:{gp}",
                           f"--rule-file={RULES}", f"--data-dir={tmp}/{name}", "--eval-interval=1s",
                           f'--label=ruler="{name}"', *args])
    wait_ready(hp, p, name)
    return p, hp, gp


def rules_health(port):
    """rule name -> (health, lastError)"""
    out = {}
    for g in get(port, "/api/v1/rules")["data"]["groups"]:
        for r in g["rules"]:
            out[r["name"]] = (r["health"], r.get("lastError", ""))
    return out


def recorded(view_port, metric, ruler_name):
    res = get(view_port, "/api/v1/query", {"query": f'{metric}{{ruler="{ruler_name}"}}'})["data"]["result"]
    return [float(s["value"][1]) for s in res]


def read(n):
    with open(C(n), "rb") as f:
        return f.read()


try:
    import grpc
    gen = os.path.join(tmp, "pb")
    os.makedirs(gen)
    protos = [p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto")]
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + gen] + protos,
                   check=True)
    sys.path.insert(0, gen)
    import info_pb2
    import querypb_pb2 as qpb
    import storepb_rpc_pb2 as rpc
    import storepb_types_pb2 as types

    _, pport = prometheus(procs, tmp, tgt.port)
    _, side_grpc = sidecar(procs, tmp, pport)
    q, q_http, q_grpc = querier("query", [f"127.0.0.1:{side_grpc}"], SERVER_TLS)
    wait_until(lambda: len(get(q_http, "/api/v1/query", {"query": "grpcq_load"})["data"]["result"]) == 2, q,
               "scraped data in the querier", 60)
    Q = f"127.0.0.1:{q_grpc}"
    r1, r1_http, r1_grpc = ruler("r1", [f"--grpc-query-endpoint={Q}", *CLIENT_TLS])

    def creds(cert=True):
        if cert:
            return grpc.ssl_channel_credentials(root_certificates=read("ca.crt"), private_key=read("client.key"),
                                                certificate_chain=read("client.crt"))
        return grpc.ssl_channel_credentials(root_certificates=read("ca.crt"))

    def methods(ch):
        return (ch.unary_stream("/thanos.Query/Query", request_serializer=qpb.QueryRequest.SerializeToString,
                                response_deserializer=qpb.QueryResponse.FromString),
                ch.unary_stream("/thanos.Query/QueryRange",
                                request_serializer=qpb.QueryRangeRequest.SerializeToString,
                                response_deserializer=qpb.QueryRangeResponse.FromString))

    def rules_over_grpc_mtls():
        wait_until(lambda: all(h == "ok" for h, _ in rules_health(r1_http).values()) and
                   len(rules_health(r1_http)) == 4, r1, "r1 rules evaluated", 30)
        _, v_http, _ = querier("view", [f"127.0.0.1:{r1_grpc}"])
        wait_until(lambda: recorded(v_http, "grpcq:load:sum", "r1") == [7.0], r1, "r1's grpcq:load:sum = 7", 30)
        assert recorded(v_http, "grpcq:hosts:count", "r1") == [2.0], recorded(v_http, "grpcq:hosts:count", "r1")
        assert recorded(v_http, "grpcq:hosts:scalar", "r1") == [20.0], recorded(v_http, "grpcq:hosts:scalar", "r1")
        alerts = get(r1_http, "/api/v1/alerts")["data"]["alerts"]
        assert [(a["labels"].get("host"), a["state"]) for a in alerts] == [("b", "firing")], alerts
    H.check("ruler_evaluates_over_grpc_mtls", rules_over_grpc_mtls)

    def http_points(res):
        out = {}
        for s in res:
            key = tuple(sorted(s["metric"].items()))
            vals = s.get("values") or [s["value"]]
            out[key] = [(int(round(float(t) * 1000)), float(v)) for t, v in vals]
        return out

    def grpc_points(stream):
        out, warnings, stats = {}, [], 0
        for m in stream:
            kind = m.WhichOneof("result")
            series = []
            if kind == "timeseries":
                series = [m.timeseries]
            elif kind == "timeseries_batch":
                series = list(m.timeseries_batch.series)
            elif kind == "warnings":
                warnings.append(m.warnings)
            elif kind == "stats":
                stats += 1
            for ts in series:
                key = tuple(sorted((lb.name, lb.value) for lb in ts.labels))
                assert key not in out, f"series {key} twice"
                out[key] = [(s.timestamp, s.value) for s in ts.samples]
        assert stats == 1, f"{stats} stats messages"
        return out, warnings

    def same(a, b):
        """equal point for point, NaN equal to NaN"""
        return a.keys() == b.keys() and all(
            len(a[k]) == len(b[k]) and all(ta == tb and (va == vb or (math.isnan(va) and math.isnan(vb)))
                                           for (ta, va), (tb, vb) in zip(a[k], b[k])) for k in a)

    def grpcio_equals_http():
        ch = grpc.secure_channel(f"localhost:{q_grpc}", creds())
        query, query_range = methods(ch)
        # a whole second after the first scraped sample (data is continuous from there on)
        wait_until(lambda: len(get(q_http, "/api/v1/query", {"query": "grpcq_load", "time": str(int(time.time()) - 1)})[
            "data"]["result"]) == 2, q, "data a second ago", 30)
        t = int(time.time()) - 1
        for expr in ("grpcq_load", "sum by (host) (grpcq_load) * 2", "scalar(sum(grpcq_load))", "vector(time())",
                     "grpcq_load{host=\"none\"}", "sum(grpcq_load) / 0"):
            for batch in (0, 1, 5):
                got, w = grpc_points(query(qpb.QueryRequest(query=expr, time_seconds=t, enableDedup=True,
                                                            response_batch_size=batch), timeout=20))
                data = get(q_http, "/api/v1/query", {"query": expr, "time": str(t)})["data"]
                want = http_points(data["result"]) if data["resultType"] != "scalar" else \
                    {(): [(int(round(data["result"][0] * 1000)), float(data["result"][1]))]}
                assert same(got, want) and not w, f"{expr} (batch {batch}): grpc {got}, http {want}"
        for expr in ("grpcq_load", "sum(grpcq_load)", "time()"):
            got, _ = grpc_points(query_range(qpb.QueryRangeRequest(
                query=expr, start_time_seconds=t - 20, end_time_seconds=t, interval_seconds=5, enableDedup=True),
                timeout=20))
            data = get(q_http, "/api/v1/query_range", {"query": expr, "start": t - 20, "end": t, "step": 5})["data"]
            want = http_points(data["result"])
            assert same(got, want) and sum(len(v) for v in got.values()) >= 1, f"{expr}: grpc {got}, http {want}"
        # storeMatchers select endpoints by __address__, as storeMatch[] does
        for addr, n in ((f"127.0.0.1:{side_grpc}", 2), ("127.0.0.1:1", 0)):
            m = types.LabelMatcher(type=types.LabelMatcher.EQ, name="__address__", value=addr)
            got, _ = grpc_points(query(qpb.QueryRequest(query="grpcq_load", time_seconds=t, storeMatchers=[
                qpb.StoreMatchers(labelMatchers=[m])]), timeout=20))
            want = http_points(get(q_http, "/api/v1/query", {"query": "grpcq_load", "time": str(t),
                                                             "storeMatch[]": f'{{__address__="{addr}"}}'})[
                "data"]["result"])
            assert same(got, want) and len(got) == n, f"storeMatchers {addr}: grpc {got}, http {want}"
        try:
            list(query(qpb.QueryRequest(query="1", time_seconds=t, shard_info=rpc.ShardInfo(total_shards=2)),
                       timeout=10))
            raise AssertionError("a sharded query was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e
        try:
            list(query(qpb.QueryRequest(query="sum(", time_seconds=t), timeout=10))
            raise AssertionError("a parse error was answered")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "parse error" in e.details(), e
        info = ch.unary_unary("/thanos.info.Info/Info", request_serializer=info_pb2.InfoRequest.SerializeToString,
                              response_deserializer=info_pb2.InfoResponse.FromString)(info_pb2.InfoRequest(),
                                                                                     timeout=10)
        assert info.ComponentType == "query" and info.HasField("query"), info
        ch.close()
    H.check("grpcio_query_equals_http_api", grpcio_equals_http)

    def grpcio_without_cert_refused():
        ch = grpc.secure_channel(f"localhost:{q_grpc}", creds(cert=False))
        query, _ = methods(ch)
        try:
            list(query(qpb.QueryRequest(query="1", time_seconds=int(time.time())), timeout=5))
            raise AssertionError("Query without a client certificate succeeded")
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
        ch.close()
    H.check("grpcio_without_client_cert_refused", grpcio_without_cert_refused)

    def ruler_without_cert_fails():
        nc, nc_http, _ = ruler("nocert", [f"--grpc-query-endpoint={Q}", "--grpc-client-tls-secure",
                                          f"--grpc-client-tls-ca={C('ca.crt')}"])
        wait_until(lambda: rules_health(nc_http)["grpcq:load:sum"][0] == "err", nc, "nocert's rule errors", 30)
        health, why = rules_health(nc_http)["grpcq:load:sum"]
        assert why, "no lastError"
        # Q still serves a client with a certificate
        ch = grpc.secure_channel(f"localhost:{q_grpc}", creds())
        got, _ = grpc_points(methods(ch)[0](qpb.QueryRequest(query="sum(grpcq_load)", time_seconds=int(time.time())),
                                            timeout=10))
        ch.close()
        assert list(got.values())[0][0][1] == 7.0, got
    H.check("ruler_without_client_cert_cannot_query", ruler_without_cert_fails)

    def ha_group():
        qh, qh_http, _ = querier("query_empty", [])  # no stores: count(...) or vector(0) = 0
        dead = free_port()
        pref, pref_http, pref_grpc = ruler("pref", [f"--query=127.0.0.1:{qh_http}", f"--grpc-query-endpoint={Q}",
                                                    *CLIENT_TLS])
        ha, ha_http, ha_grpc = ruler("ha", [f"--grpc-query-endpoint=127.0.0.1:{dead}",
                                            f"--grpc-query-endpoint={Q}", *CLIENT_TLS])
        _, v_http, _ = querier("view_ha", [f"127.0.0.1:{pref_grpc}", f"127.0.0.1:{ha_grpc}"])
        wait_until(lambda: recorded(v_http, "grpcq:hosts:count", "pref") == [0.0], pref, "pref records 0 (HTTP)",
                   30)
        for _ in range(3):  # stays with HTTP while it answers
            time.sleep(1)
            assert recorded(v_http, "grpcq:hosts:count", "pref") == [0.0]
        procs.procs.remove(qh)
        qh.terminate()
        qh.wait(10)
        wait_until(lambda: recorded(v_http, "grpcq:hosts:count", "pref") == [2.0], pref,
                   "pref records 2 (gRPC) once the HTTP querier is gone", 30)
        wait_until(lambda: recorded(v_http, "grpcq:load:sum", "ha") == [7.0], ha, "ha records 7", 30)
        time.sleep(3)  # round robin: evaluations starting at the dead endpoint still succeed
        assert all(h == "ok" for h, _ in rules_health(ha_http).values()), rules_health(ha_http)
        assert all(h == "ok" for h, _ in rules_health(pref_http).values()), rules_health(pref_http)
    H.check("ha_group_http_preferred_then_grpc", ha_group)

    def stores(port):
        """address -> lastError ("" when healthy)"""
        out = {}
        for group in get(port, "/api/v1/stores")["data"].values():
            for st in group:
                out[st["name"]] = st.get("lastError") or ""
        return out

    def sd_config_reloaded():
        sd = os.path.join(tmp, "endpoints.yml")
        with open(sd, "w") as f:
            f.write(f"endpoints:\n  - address: 127.0.0.1:{r1_grpc}\n")
        sq, sq_http, _ = querier("sdq", [], [f"--endpoint.sd-config-file={sd}"])
        wait_until(lambda: stores(sq_http) == {f"127.0.0.1:{r1_grpc}": ""}, sq, "sdq sees r1", 30)
        # replaced: Q over mutual TLS with the certificates the new file names
        with open(sd + ".tmp", "w") as f:
            f.write(f"""default_client_config:
  tls_config: {{ca_file: {C('ca.crt')}, cert_file: {C('client.crt')}, key_file: {C('client.key')}}}
endpoints:
  - address: {Q}
""")
        os.replace(sd + ".tmp", sd)
        wait_until(lambda: stores(sq_http) == {Q: ""}, sq, "sdq sees only Q, healthy over mTLS", 30)
        wait_until(lambda: len(get(sq_http, "/api/v1/query", {"query": "grpcq_load"})["data"]["result"]) == 2, sq,
                   "grpcq_load through Q", 15)

        def write_sd(client_config):
            with open(sd + ".tmp", "w") as f:
                f.write(f"endpoints:\n  - address: {Q}\n    client_config: {client_config}\n")
            os.replace(sd + ".tmp", sd)

        def replaced():
            return open(os.path.join(tmp, "sdq.log")).read().count("replacing endpoint connection")

        # Q kept, its client_config changed: no client certificate -> the new connection is refused
        n0 = replaced()
        write_sd(f"{{tls_config: {{ca_file: {C('ca.crt')}}}}}")
        wait_until(lambda: stores(sq_http).get(Q, "") != "", sq, "Q redialled without a client certificate", 30)
        assert replaced() == n0 + 1, replaced()
        # the certificate back: healthy again over a new connection
        mtls = f"tls_config: {{ca_file: {C('ca.crt')}, cert_file: {C('client.crt')}, key_file: {C('client.key')}}}"
        write_sd(f"{{{mtls}}}")
        wait_until(lambda: stores(sq_http) == {Q: ""}, sq, "Q redialled with the client certificate", 30)
        wait_until(lambda: len(get(sq_http, "/api/v1/query", {"query": "grpcq_load"})["data"]["result"]) == 2, sq,
                   "grpcq_load through Q again", 15)
        # compression added while queries run: replaced, and not one query fails or warns
        import threading
        stop, answers, bad = threading.Event(), [], []

        def load():
            while not stop.is_set():
                try:
                    r = get(sq_http, "/api/v1/query", {"query": "grpcq_load"})
                    ok = r["status"] == "success" and len(r["data"]["result"]) == 2 and not r.get("warnings")
                    (answers if ok else bad).append(r)
                except Exception as e:  # noqa: BLE001
                    bad.append(repr(e))
        th = threading.Thread(target=load)
        th.start()
        try:
            n1 = replaced()
            time.sleep(0.5)
            write_sd(f"{{{mtls}, compression: snappy}}")
            wait_until(lambda: replaced() == n1 + 1, sq, "Q redialled with compression", 30)
            time.sleep(1)
        finally:
            stop.set()
            th.join(30)
        assert not bad and len(answers) > 5, (bad[:3], len(answers))
        # the same settings written again (another file, same meaning): nothing redialled
        n2 = replaced()
        write_sd(f"{{compression: snappy, {mtls}}}")
        time.sleep(7)
        assert replaced() == n2 and stores(sq_http) == {Q: ""}, (replaced(), stores(sq_http))
        # a broken file: logged, the previous endpoints stay
        with open(sd, "w") as f:
            f.write("endpoints: [ {address: \n")
        wait_until(lambda: "reloading --endpoint.sd-config-file failed" in open(os.path.join(tmp, "sdq.log")).read(),
                   sq, "the bad file logged", 15)
        assert stores(sq_http) == {Q: ""} and sq.poll() is None
    H.check("querier_endpoint_sd_config_file_reloaded", sd_config_reloaded)

    def bad_flags():
        for v, want in (("bogus+x:1", "unknown lookup prefix"), ("127.0.0.1", "missing port"),
                        ("dns+", "empty address")):
            r = subprocess.run([BIN, "rule", f"--grpc-query-endpoint={v}", f"--rule-file={RULES}",
                                f"--data-dir={tmp}/bad"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and want in r.stderr, (v, r.returncode, r.stderr)
    H.check("bad_grpc_query_endpoint_exit_2", bad_flags)
except Exception as e:  # noqa: BLE001 - setup failures are test failures
    H.result("setup", False, f"{type(e).__name__}: {e}")
finally:
    procs.stop_all()
    tgt.close()
sys.exit(1 if H.failed else 0)
