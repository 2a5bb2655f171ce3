#!/usr/bin/python3
"""`strata query` end to end: promtool against strata query vs Prometheus 2.42, HA dedup, partial
response, and Prometheus's exact error JSON.

Data: promtool builds blocks from generated OpenMetrics files (2h windows well in the past):
  P    up{job,instance} gauges and http_requests_total{job,code} counters (the promtool comparison);
  A/B  ha_total{job="ha"} counter every 15s, replica A missing one 5-minute stretch and B another;
  REF  the same counter without gaps.
Each set is uploaded to its own FILESYSTEM bucket with `strata tools bucket upload-blocks`
(external label replica="p"/"a"/"b"/"ref") and served by its own `strata store`; `strata query`
gets the four as --endpoint with --query.replica-label=replica, so deduplication strips the
replica label and P/REF answer with Prometheus's label sets. A Prometheus 2.42 runs over a copy of P's
blocks. Everything binds 127.0.0.1 on free ports and is stopped by PID.

  (a) promtool query instant|range|series|labels print the same against both servers;
  (d) malformed requests get byte-identical error JSON and status codes from both servers; stats=1|all
      give the same data.stats shape (keys, order, nesting) and peakSamples as Prometheus; gzip and
      deflate responses decode to the plain response;
  (b) dedup: A+B with dedup answer exactly like REF, without dedup show both replicas;
  (c) partial response: with store P killed, a query over A and B returns their data plus a warning
      naming P; with partial_response=false the query fails naming P.
"""
import gzip, json, os, shutil, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request, zlib
from lib_harness import Harness, free_port, stop

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
NAME = "query_api"
harness = Harness(NAME)
result, check = harness.result, harness.check
procs = []


def start(tmp, name, argv):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    procs.append((p, log))
    return p


def wait_ready(port, p, what, limit=30):
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).status == 200:
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited with {p.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {limit}s")


BASE = (int(time.time()) // 7200 - 12) * 7200  # an aligned 2h window, two days back


def blocks(tmp, name, lines_for):
    """promtool blocks from the OpenMetrics lines lines_for(t) yields for every 15s step of one 2h window."""
    om = os.path.join(tmp, name + ".om")
    with open(om, "w") as f:
        f.write("# TYPE up gauge\n# TYPE http_requests counter\n# TYPE ha counter\n")
        for i in range(0, 7200, 15):
            t = BASE + i
            for line in lines_for(t, i):
                f.write(f"{line} {t}\n")
        f.write("# EOF\n")
    out = os.path.join(tmp, name)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def p_lines(t, i):
    for j, job in enumerate(["api", "db", "web"]):
        for inst in range(3):
            yield f'up{{job="{job}",instance="10.0.0.{inst}:9100"}} {0 if (i // 600 + inst + j) % 5 == 0 else 1}'
        for code in ["200", "500"]:
            rate = 3 + j if code == "200" else 0.25
            yield f'http_requests_total{{job="{job}",code="{code}"}} {int(i * rate) + (7 if i > 3600 else 0)}'


def ha_lines(gap):
    def f(t, i):
        if gap and gap[0] <= i < gap[1]:
            return
        yield f'ha_total{{job="ha"}} {i * 2}'
    return f


def get(port, path, params=None, post=False):
    url = f"http://127.0.0.1:{port}{path}"
    data = None
    if params is not None:
        q = urllib.parse.urlencode(params, doseq=True)
        if post:
            data = q.encode()
        else:
            url += "?" + q
    try:
        with urllib.request.urlopen(url, data=data, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def promtool(*args):
    r = subprocess.run(["promtool", "query", *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="strata-query-api.")
    keep = False
    try:
        sets = {
            "p": blocks(tmp, "blocks-p", p_lines),
            "a": blocks(tmp, "blocks-a", ha_lines((1800, 2100))),
            "b": blocks(tmp, "blocks-b", ha_lines((4500, 4800))),
            "ref": blocks(tmp, "blocks-ref", ha_lines(None)),
        }
        stores = {}
        for name, path in sets.items():
            bdir = os.path.join(tmp, "bucket-" + name)
            os.makedirs(bdir)
            cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
            subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + path,
                            f'--label=replica="{name}"'], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            gp, hp = free_port(), free_port()
            p = start(tmp, "store-" + name, [STRATA, "store", "--objstore.config=" + cfg,
                                             "--data-dir=" + os.path.join(tmp, "data-" + name),
                                             f"--grpc-address=127.0.0.1:{gp}", f"--http-address=127.0.0.1:{hp}",
                                             "--http-grace-period=1s"])
            stores[name] = (p, gp, hp)
        for name, (p, gp, hp) in stores.items():
            wait_ready(hp, p, "strata store " + name)

        prom_dir = os.path.join(tmp, "prom")
        shutil.copytree(sets["p"], prom_dir, ignore=shutil.ignore_patterns("wal", "*.tmp"))
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global: {}\n")
        prom_port = free_port()
        prom = start(tmp, "prometheus", ["prometheus", "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                         "--storage.tsdb.path=" + prom_dir, "--storage.tsdb.retention.time=100y",
                                         f"--web.listen-address=127.0.0.1:{prom_port}",
                                         # stats=all with per-step sample counts, as strata query reports them
                                         "--enable-feature=promql-per-step-stats"])
        qport, qgrpc = free_port(), free_port()
        q = start(tmp, "query", [STRATA, "query", f"--http-address=127.0.0.1:{qport}",
                                 f"--grpc-address=127.0.0.1:{qgrpc}", "--query.replica-label=replica",
                                 "--http-grace-period=1s", "--grpc-grace-period=1s"] +
                  [f"--endpoint=127.0.0.1:{gp}" for (_, gp, _) in stores.values()])
        wait_ready(prom_port, prom, "prometheus")
        wait_ready(qport, q, "strata query")
        S = f"http://127.0.0.1:{qport}"
        P = f"http://127.0.0.1:{prom_port}"
        t_mid = BASE + 3600
        t_a, t_b = BASE + 600, BASE + 7000

        # ---- (a) promtool against both
        cases = [
            ("instant_up", ["instant", "{url}", "up", f"--time={t_mid}"]),
            ("instant_sum_by", ["instant", "{url}", "sum by (job) (up)", f"--time={t_mid}"]),
            ("instant_rate", ["instant", "{url}", "rate(http_requests_total[5m])", f"--time={t_mid + 7.5}"]),
            ("instant_scalar", ["instant", "{url}", "scalar(sum(up))", f"--time={t_mid}"]),
            ("instant_json", ["instant", "-o", "json", "{url}", "topk(3, http_requests_total)", f"--time={t_mid}"]),
            ("range_rate", ["range", "{url}", "sum by (job) (rate(http_requests_total[2m]))", f"--start={t_a}",
                            f"--end={t_b}", "--step=60s"]),
            ("range_increase", ["range", "{url}", 'increase(http_requests_total{code="500"}[10m])',
                                f"--start={t_a}", f"--end={t_b}", "--step=5m"]),
            ("range_raw_json", ["range", "-o", "json", "{url}", 'up{job="db"}', f"--start={t_a}",
                                f"--end={t_a + 1800}", "--step=37s"]),
            ("series", ["series", "{url}", "--match=up", "--match=http_requests_total{code=\"500\"}"]),
            ("series_time", ["series", "{url}", "--match={job=\"api\"}", f"--start={t_a}", f"--end={t_b}"]),
            ("labels_code", ["labels", "{url}", "code"]),
            ("labels_instance", ["labels", "{url}", "instance"]),
            ("labels_name", ["labels", "{url}", "__name__", "--match=up"]),
        ]
        for name, argv in cases:
            def t(argv=argv):
                rs = promtool(*[a.replace("{url}", S) for a in argv])
                rp = promtool(*[a.replace("{url}", P) for a in argv])
                assert rp[0] == 0, f"prometheus: {rp}"
                assert rs[0] == 0, f"strata: {rs}"
                assert rs[1].strip(), "empty output"
                assert rs[1] == rp[1], f"strata printed\n{rs[1][:2000]}\nprometheus printed\n{rp[1][:2000]}"
            check("promtool_" + name, t)

        # ---- (d) errors: byte-identical JSON and status codes
        errors = [
            ("bad_promql", "/api/v1/query", {"query": "sum(rate(x[5m])"}),
            ("bad_promql_post", "/api/v1/query", {"query": "up{"}, True),
            ("bad_time", "/api/v1/query", {"query": "up", "time": "abc"}),
            ("bad_start", "/api/v1/query_range", {"query": "up", "start": "x", "end": "1", "step": "1"}),
            ("end_before_start", "/api/v1/query_range", {"query": "up", "start": "10", "end": "5", "step": "1"}),
            ("zero_step", "/api/v1/query_range", {"query": "up", "start": "0", "end": "5", "step": "0"}),
            ("bad_step", "/api/v1/query_range", {"query": "up", "start": "0", "end": "5", "step": "1x"}),
            ("too_many_points", "/api/v1/query_range", {"query": "up", "start": "0", "end": "11001", "step": "1"}),
            ("range_vector_in_range_query", "/api/v1/query_range",
             {"query": "up[5m]", "start": "0", "end": "10", "step": "1"}),
            ("bad_label_name", "/api/v1/label/1bad/values", None),
            ("missing_match", "/api/v1/series", {}),
            ("empty_matcher", "/api/v1/series", {"match[]": '{job=""}'}),
            ("bad_timeout", "/api/v1/query", {"query": "up", "timeout": "soon"}),
            ("unknown_function", "/api/v1/query", {"query": "nope(up)"}),
        ]
        for e in errors:
            name, path, params = e[0], e[1], e[2]
            post = len(e) > 3

            def t(path=path, params=params, post=post):
                ss, sb = get(qport, path, params, post)
                ps, pb = get(prom_port, path, params, post)
                assert ps >= 400, f"prometheus answered {ps}: {pb}"
                assert (ss, sb) == (ps, pb), f"strata {ss} {sb}\nprometheus {ps} {pb}"
            check("error_" + name, t)

        # ---- stats: the same JSON shape (keys, their order and nesting, value kinds) as Prometheus 2.42
        def shape(x):
            if isinstance(x, dict):
                return [(k, shape(v)) for k, v in x.items()]
            if isinstance(x, list):
                return [shape(x[0])] if x else []
            return "number" if isinstance(x, (int, float)) else type(x).__name__

        for name, path, params in [
            ("instant", "/api/v1/query", {"query": "sum by (job) (rate(http_requests_total[5m]))", "time": t_mid}),
            ("range", "/api/v1/query_range", {"query": "up", "start": t_a, "end": t_a + 600, "step": 60}),
            ("scalar", "/api/v1/query", {"query": "scalar(sum(up))", "time": t_mid}),
        ]:
            for stats in ["1", "all"]:
                def t(path=path, params=params, stats=stats):
                    ss, sb = get(qport, path, {**params, "stats": stats})
                    ps, pb = get(prom_port, path, {**params, "stats": stats})
                    assert ss == ps == 200, (ss, sb, ps, pb)
                    sj, pj = json.loads(sb), json.loads(pb)
                    assert shape(sj) == shape(pj), f"strata {shape(sj)}\nprometheus {shape(pj)}"
                    assert sj["data"]["result"] == pj["data"]["result"], (sb, pb)
                    samples = sj["data"]["stats"]["samples"]
                    assert samples["peakSamples"] == pj["data"]["stats"]["samples"]["peakSamples"], (sb, pb)
                    t = sj["data"]["stats"]["timings"]
                    assert all(v >= 0 for v in t.values()) and t["evalTotalTime"] > 0, t
                check(f"stats_{name}_{stats}", t)

        def t_no_stats():
            st, body = get(qport, "/api/v1/query", {"query": "up", "time": t_mid})
            assert st == 200 and "stats" not in json.loads(body)["data"], body
        check("stats_absent_without_param", t_no_stats)

        # ---- compression: Go's client (promtool above) asks for gzip; curl-style deflate too
        def t_compression():
            params = urllib.parse.urlencode({"query": "up", "start": t_a, "end": t_b, "step": 15})
            plain = get(qport, "/api/v1/query_range?" + params)
            assert plain[0] == 200 and len(plain[1]) > 10000, plain[0]
            for port, who in [(qport, "strata"), (prom_port, "prometheus")]:
                for enc, dec in [("gzip", lambda b: gzip.decompress(b)), ("deflate", lambda b: zlib.decompress(b))]:
                    rq = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/query_range?{params}",
                                                headers={"Accept-Encoding": enc})
                    with urllib.request.urlopen(rq, timeout=30) as r:
                        assert r.headers.get("Content-Encoding") == enc, (who, enc, dict(r.headers))
                        raw = r.read()
                    body = dec(raw).decode()
                    assert len(raw) * 4 < len(body), (who, enc, len(raw), len(body))
                    if who == "strata":
                        assert r.headers.get("Vary") == "Accept-Encoding", dict(r.headers)
                        assert body == plain[1], (who, enc)
                    else:
                        assert json.loads(body)["data"] == json.loads(plain[1])["data"], "results differ"
        check("compression_gzip_deflate", t_compression)

        def t_many_to_many():
            # Same status, errorType and message: the series printed like labels.String() in Prometheus
            # ({__name__="up", instance="...", job="..."}), the whole JSON byte for byte.
            params = {"query": "up + on(job) up", "time": str(t_mid)}
            ss, sb = get(qport, "/api/v1/query", params)
            ps, pb = get(prom_port, "/api/v1/query", params)
            sj, pj = json.loads(sb), json.loads(pb)
            assert (ss, sj["errorType"]) == (ps, pj["errorType"]) == (422, "execution"), (sb, pb)
            assert '[{__name__="up", ' in pj["error"], pb
            assert sj["error"] == pj["error"], (sb, pb)
            assert sb == pb, (sb, pb)
        check("error_many_to_many", t_many_to_many)

        # ---- (b) HA dedup
        ha = {"store_a": f"127.0.0.1:{stores['a'][1]}", "store_b": f"127.0.0.1:{stores['b'][1]}",
              "store_ref": f"127.0.0.1:{stores['ref'][1]}"}
        ab = ['{__address__="%s"}' % ha["store_a"], '{__address__="%s"}' % ha["store_b"]]
        ref = ['{__address__="%s"}' % ha["store_ref"]]

        def rng(expr, match, extra=None):
            params = {"query": expr, "start": BASE, "end": BASE + 7200 - 15, "step": 30, "storeMatch[]": match}
            params.update(extra or {})
            st, body = get(qport, "/api/v1/query_range", params)
            assert st == 200, f"{st} {body}"
            return json.loads(body)["data"]["result"]

        def dedup_close(expr):
            """Dedup of A+B vs the gap-free REF: A and B scrape at the same times, so the default penalty
            deduplication hands over at the other replica's first sample after each gap and the answer is
            REF's exactly (the Thanos-exact mode skips ~45s there: dedup_test, dedup_differential.py); exactly one series, without the replica label."""
            got, want = rng(expr, ab), rng(expr, ref)
            assert len(got) == len(want) == 1, (len(got), len(want))
            assert got[0]["metric"] == want[0]["metric"], (got[0]["metric"], want[0]["metric"])
            assert "replica" not in got[0]["metric"], got[0]["metric"]
            gv, wv = dict(got[0]["values"]), dict(want[0]["values"])
            assert set(gv) == set(wv), f"timestamps differ: {sorted(set(gv) ^ set(wv))[:10]}"
            diffs = [(t, gv[t], wv[t]) for t in sorted(gv) if gv[t] != wv[t]]
            assert not diffs, f"{len(diffs)} points differ: {diffs[:10]}"

        for name, expr in [("raw", "ha_total"), ("rate", "rate(ha_total[2m])"), ("increase", "increase(ha_total[5m])"),
                           ("sum_by_rate", "sum by (job) (rate(ha_total[2m]))")]:
            check("dedup_" + name, lambda expr=expr: dedup_close(expr))

        def t_no_dedup():
            res = rng("ha_total", ab, {"dedup": "false", "lookback_delta": "1m"})
            reps = sorted(r["metric"].get("replica") for r in res)
            assert reps == ["a", "b"], reps
            # Each replica shows its own 5-minute gap (1m lookback does not bridge it) ...
            for r in res:
                ts = [v[0] for v in r["values"]]
                assert 240 - 10 <= len(ts) <= 240 - 6, len(ts)
            # ... and with dedup the gaps are gone.
            res = rng("ha_total", ab, {"lookback_delta": "1m"})
            assert len(res) == 1 and len(res[0]["values"]) == 240, [len(r["values"]) for r in res]
        check("no_dedup_shows_both_replicas", t_no_dedup)

        def t_rate_exact():
            # At the switches too.
            got = rng("rate(ha_total[5m])", ab)[0]["values"]
            want = rng("rate(ha_total[5m])", ref)[0]["values"]
            assert got == want, [(g, w) for g, w in zip(got, want) if g != w][:6]
        check("dedup_rate_exact_at_switches", t_rate_exact)

        # ---- stores endpoint
        def t_stores():
            st, body = get(qport, "/api/v1/stores")
            assert st == 200, body
            groups = json.loads(body)["data"]
            # Grouped by the component type each endpoint's Info names: all four are store gateways.
            assert list(groups) == ["store"], list(groups)
            data = groups["store"]
            names = sorted(s["name"] for s in data)
            assert names == sorted(f"127.0.0.1:{gp}" for (_, gp, _) in stores.values()), names
            for s in data:
                assert s["lastError"] is None, s
                assert len(s["labelSets"]) == 1 and "replica" in s["labelSets"][0], s
        check("stores_endpoint", t_stores)

        # ---- layering: a second querier whose only endpoint is the first one's gRPC StoreAPI
        def t_layered():
            q2port, q2grpc = free_port(), free_port()
            q2 = start(tmp, "query2", [STRATA, "query", f"--http-address=127.0.0.1:{q2port}",
                                       f"--grpc-address=127.0.0.1:{q2grpc}", "--query.replica-label=replica",
                                       "--http-grace-period=1s", f"--endpoint=127.0.0.1:{qgrpc}"])
            try:
                wait_ready(q2port, q2, "layered strata query")
                # ha_total without dedup: which replica the penalty algorithm picks at a switch depends on
                # the replicas' order when their timestamps tie (store order vs label order here).
                for expr, extra in [("sum by (job) (rate(http_requests_total[5m]))", {}), ("up", {}),
                                    ("ha_total", {"dedup": "false"})]:
                    params = {"query": expr, "start": t_a, "end": t_b, "step": 120, **extra}
                    a = get(qport, "/api/v1/query_range", params)
                    b = get(q2port, "/api/v1/query_range", params)
                    if a != b:
                        da, db = json.loads(a[1])["data"]["result"], json.loads(b[1])["data"]["result"]
                        diff = [(x, y) for ra, rb in zip(da, db) for x, y in zip(ra["values"], rb["values"]) if x != y]
                        assert False, f"{expr}: {len(da)} vs {len(db)} series, differing points {diff[:6]}"
                st, body = get(q2port, "/api/v1/stores")
                groups = json.loads(body)["data"]
                # The first querier's Info says "query": listed under that type, as Thanos does.
                assert list(groups) == ["query"], body
                data = groups["query"]
                assert len(data) == 1 and data[0]["lastError"] is None, body
                assert len(data[0]["labelSets"]) == 4, body
            finally:
                stop(q2)
        check("layered_querier_same_results", t_layered)

        # ---- (c) partial response: kill store P
        stop(stores["p"][0])
        paddr = f"127.0.0.1:{stores['p'][1]}"

        def t_partial_warn():
            st, body = get(qport, "/api/v1/query", {"query": "count by (replica) (ha_total)", "time": t_mid,
                                                   "dedup": "false"})
            assert st == 200, f"{st} {body}"
            d = json.loads(body)
            reps = sorted(r["metric"]["replica"] for r in d["data"]["result"])
            assert reps == ["a", "b", "ref"], reps
            assert any(paddr in w for w in d.get("warnings", [])), d.get("warnings")
        check("partial_response_warns_naming_store", t_partial_warn)

        def t_partial_abort():
            st, body = get(qport, "/api/v1/query", {"query": "count by (replica) (ha_total)", "time": t_mid,
                                                   "partial_response": "false"})
            d = json.loads(body)
            assert st >= 400 and d["status"] == "error", f"{st} {body}"
            assert paddr in d["error"], d["error"]
        check("partial_response_off_fails_naming_store", t_partial_abort)

        def t_partial_series():
            st, body = get(qport, "/api/v1/series", {"match[]": "ha_total"})
            d = json.loads(body)
            assert st == 200 and any(paddr in w for w in d.get("warnings", [])), f"{st} {body}"
        check("partial_response_series_warns", t_partial_series)

        def t_clean_exit():
            stop(q)
            assert q.returncode == 0, q.returncode
        check("query_exits_cleanly", t_clean_exit)
    except Exception as e:  # noqa: BLE001 - setup failure
        result("setup", False, f"{type(e).__name__}: {e}")
        keep = True
    finally:
        for p, log in procs:
            stop(p)
            log.close()
        if harness.failed or keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{NAME}: {harness.failed} failed")
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
