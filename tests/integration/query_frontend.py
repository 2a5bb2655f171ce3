#!/usr/bin/python3
"""`strata query-frontend` in front of `strata query` over `strata store` with several days of blocks.

Data: promtool blocks from OpenMetrics written here (counters, gauges, classic histograms; 60s apart,
about 3.5 days ending 3h ago), uploaded to a FILESYSTEM bucket and served by `strata store`; one
`strata query` over it. Frontends (each on its own free port; every process stopped by PID):
  plain  no results cache
  mem    IN-MEMORY cache, downstream through a counting/fault-injecting proxy (a thread in this test)
  mc     MEMCACHED cache on a real memcached (/usr/bin/memcached, free port), through another proxy
  retry  no cache, through a third proxy, --query-range.max-retries-per-request=3
Checks:
  - a set of range queries (aggregations, rate, topk, subqueries, @ start()/end(), offset,
    histogram_quantile; ranges crossing day boundaries with odd steps such as 97s) answered through each
    frontend is byte for byte the querier's answer; stats=all give the same data and sample counts;
  - the second run comes wholly from cache (hit counters grow, the proxy sees no request), and so does
    the third (answers kept ready next to the extents); a refresh shifted by one step asks the downstream
    only for the new step, and equals the querier again when repeated, shifted once more (whole days
    from their ready series) or extended past the cached end (the new steps are in the answer);
  - retries: 503 for the first two requests is retried into the right answer; always 503 returns the
    downstream's error; a 400 is returned at once, not retried;
  - labels, label values and series through the frontend equal the querier's (and again from cache);
  - other paths (/api/v1/stores, /api/v1/status/buildinfo) are proxied unchanged;
  - memcached killed mid-test: every query still answers right, no error reaches the client.
"""
import ctypes, http.server, json, os, shutil, signal, socket, socketserver, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("query_frontend")
result, check = harness.result, harness.check
procs = []
DAY = 86400
END = (int(time.time()) // 3600 - 3) * 3600
START = END - int(3.5 * DAY)
SCRAPE = 60


def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def start(args, log):
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    procs.append(p)
    return p


def gen_blocks(tmp):
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE req counter\n# TYPE temp gauge\n# TYPE lat_seconds histogram\n")
        bounds = ["0.1", "0.5", "1", "+Inf"]
        for k, t in enumerate(range(START, END, SCRAPE)):
            for job in ("api", "web"):
                for inst in range(3):
                    v = k * (3 + inst) + (k // 500) * 7 * (inst == 1)
                    if inst == 2 and k % 1700 < 30:
                        v = k % 1700  # counter resets
                    f.write(f'req_total{{job="{job}",instance="i{inst}"}} {v} {t}\n')
            for room in ("a", "b"):
                if room == "b" and k % 900 < 60:
                    continue  # gaps
                f.write(f'temp{{room="{room}"}} {20 + (k * 7 % 23) / 4} {t}\n')
            c = [k * 2, k * 5, k * 7, k * 8]
            for b, v in zip(bounds, c):
                f.write(f'lat_seconds_bucket{{svc="x",le="{b}"}} {v} {t}\n')
            f.write(f'lat_seconds_count{{svc="x"}} {c[-1]} {t}\nlat_seconds_sum{{svc="x"}} {k * 3.5} {t}\n')
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


class Proxy:
    """A tiny HTTP proxy in a thread: counts requests, records query_range (start, end), and can fail."""

    def __init__(self, target):
        self.target, self.lock = target, threading.Lock()
        self.reset()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.count += 1
                    path = urllib.parse.urlsplit(self.path).path
                    if path == "/api/v1/query_range":
                        form = urllib.parse.parse_qs(body.decode() if body else urllib.parse.urlsplit(self.path).query)
                        proxy.ranges.append((float(form["start"][0]), float(form["end"][0])))
                    fail = None
                    if proxy.fail_next > 0:
                        proxy.fail_next -= 1
                        fail = proxy.fail_code
                    elif proxy.always_fail:
                        fail = proxy.fail_code
                if fail:
                    msg = json.dumps({"status": "error", "errorType": "internal" if fail >= 500 else "bad_data",
                                      "error": f"injected {fail}"}).encode()
                    self.send_response(fail)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                req = urllib.request.Request(proxy.target + self.path, data=body, method=self.command)
                for k, v in self.headers.items():
                    if k.lower() not in ("host", "connection", "content-length"):
                        req.add_header(k, v)
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        code, hdrs, data = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    code, hdrs, data = e.code, e.headers, e.read()
                self.send_response(code)
                for k, v in hdrs.items():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = handle_one

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.port = free_port()
        self.srv = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def reset(self, fail_next=0, always_fail=False, fail_code=503):
        with self.lock:
            self.count, self.ranges = 0, []
            self.fail_next, self.always_fail, self.fail_code = fail_next, always_fail, fail_code


def get(port, path, params=None, post=False, headers=None):
    url = f"http://127.0.0.1:{port}{path}"
    data = None
    if params is not None:
        q = urllib.parse.urlencode(params, doseq=True)
        if post:
            data = q.encode()
        else:
            url += "?" + q
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if (l.startswith(name + "{") or l.startswith(name + " ")) and labels in l)


D1 = (START // DAY + 1) * DAY  # the first UTC midnight inside the data
QUERIES = [  # (query, start, end, step)
    ("sum by (job) (rate(req_total[5m]))", D1 - 7200 - 13, D1 + 2 * DAY + 3600, 97),
    ("rate(req_total[10m])", D1 - 3600, D1 + DAY + 1800, 300),
    ("topk(2, req_total)", D1 - 5000, D1 + 5000, 97),
    ("max_over_time(rate(req_total[5m])[30m:1m])", D1 - 4000, D1 + DAY, 120),
    ("histogram_quantile(0.9, sum by (le) (rate(lat_seconds_bucket[5m])))", D1 - 3 * 3600, D1 + 3 * 3600, 61),
    ("temp offset 1h", D1 - 7200, D1 + 7200, 97),
    ("temp @ start()", D1 - 7200, D1 + 7200, 300),
    ("sum(rate(req_total[5m] @ end()))", D1 - 7200, D1 + DAY + 7200, 600),
    ("avg_over_time(temp[1h])", START + 3600, END - 3600, 3600),
    ("count(req_total) by (instance)", D1 - 1, D1 + DAY - 1, 86400),
    ("req_total - req_total offset 1d", D1 + 600, D1 + DAY + 1200, 197),
    ("vector(1)", D1 - 100, D1 + 100, 1),
]


def run_set(fe_port, direct_port, tag, stats=False, align=True):
    """Every query through the frontend vs the querier (asked for the step-aligned range when the frontend
    aligns, as Thanos's does by default)."""
    bad = []
    for q, s, e, st in QUERIES:
        params = {"query": q, "start": str(s), "end": str(e), "step": str(st)}
        if stats:
            params["stats"] = "all"
        direct = dict(params, start=str(s - s % st), end=str(e - e % st)) if align else params
        c1, b1 = get(direct_port, "/api/v1/query_range", direct)
        c2, b2 = get(fe_port, "/api/v1/query_range", params, post=True)
        if stats:
            def norm(b):
                j = json.loads(b)
                st_ = j["data"].pop("stats")
                return json.dumps(j, sort_keys=True), st_["samples"]["totalQueryableSamples"], \
                    st_["samples"]["totalQueryableSamplesPerStep"]
            if c1 != 200 or c2 != 200 or norm(b1) != norm(b2):
                bad.append(q)
        elif c1 != 200 or c1 != c2 or b1 != b2:
            bad.append(f"{q}: direct {c1} {b1[:150]} / frontend {c2} {b2[:150]}")
    result(f"{tag}_equals_querier", not bad, "; ".join(bad[:3]))


def main():
    tmp = tempfile.mkdtemp(prefix="strata-query-frontend.")
    log = open(os.path.join(tmp, "procs.log"), "w")
    try:
        blocks = gen_blocks(tmp)
        bdir = os.path.join(tmp, "bucket")
        os.makedirs(bdir)
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks,
                        '--label=cluster="c1"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sg, sh = free_port(), free_port()
        store = start([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                       f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s"], log)
        wait_ready(sh, store, "strata store", 60)
        qh, qg = free_port(), free_port()
        querier = start([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                         f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s"], log)
        wait_ready(qh, querier, "strata query", 60)
        wait_until(lambda: json.loads(get(qh, "/api/v1/labels")[1])["data"], querier, "store data in querier", 60)

        mc_port = free_port()
        margs = ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-m", "32", "-t", "1"]
        if os.getuid() == 0:
            margs += ["-u", "nobody"]
        memcached = start(margs, log)
        wait_until(lambda: socket.create_connection(("127.0.0.1", mc_port), timeout=1).close() is None, memcached,
                   "memcached")

        qurl = f"http://127.0.0.1:{qh}"
        pmem, pmc, pretry = Proxy(qurl), Proxy(qurl), Proxy(qurl)
        common = ["--http-grace-period=1s", "--query-range.response-cache-max-freshness=1m",
                  "--labels.response-cache-max-freshness=1m"]

        def frontend(name, downstream, *extra):
            port = free_port()
            p = start([STRATA, "query-frontend", f"--http-address=127.0.0.1:{port}",
                       f"--query-frontend.downstream-url={downstream}", *common, *extra], log)
            return name, port, p

        mem_cache = "--query-range.response-cache-config=type: IN-MEMORY\nconfig:\n  max_size: 64MB\n"
        fes = dict((f[0], f[1:]) for f in [
            frontend("plain", qurl, "--no-query-range.align-range-with-step"),
            frontend("mem", f"http://127.0.0.1:{pmem.port}", mem_cache,
                     "--labels.response-cache-config=type: IN-MEMORY\nconfig:\n  max_size_items: 1000\n",
                     "--cache-compression-type=snappy", "--query-frontend.log-queries-longer-than=-1ms"),
            frontend("mc", f"http://127.0.0.1:{pmc.port}",
                     f"--query-range.response-cache-config=type: MEMCACHED\nconfig:\n  addresses: [127.0.0.1:{mc_port}]\n"
                     "  timeout: 200ms\n"),
            frontend("retry", f"http://127.0.0.1:{pretry.port}", "--query-range.max-retries-per-request=3"),
        ])
        for name, (port, p) in fes.items():
            wait_ready(port, p, "query-frontend " + name, 30)

        plain, mem, mc, retry = (fes[n][0] for n in ("plain", "mem", "mc", "retry"))
        run_set(plain, qh, "plain_unaligned", align=False)
        run_set(plain, qh, "plain_unaligned_stats", stats=True, align=False)

        # IN-MEMORY: cold, then warm from cache only.
        run_set(mem, qh, "mem_cold")
        hits0 = metric(mem, "cortex_cache_hits", 'tripperware="query_range"')
        pmem.reset()
        run_set(mem, qh, "mem_warm")
        hits = metric(mem, "cortex_cache_hits", 'tripperware="query_range"') - hits0
        result("mem_warm_no_downstream_requests", pmem.count == 0, f"{pmem.count} downstream requests")
        result("mem_warm_hits_counted", hits >= len(QUERIES), f"hits grew by {hits}")
        # Third run: every answer was kept ready (its body next to its pieces' extents): still the querier's.
        pmem.reset()
        run_set(mem, qh, "mem_ready")
        result("mem_ready_no_downstream_requests", pmem.count == 0, f"{pmem.count} downstream requests")
        # A dashboard refresh shifted by one step asks only for the new step.
        q, s, e, st = QUERIES[0]
        pmem.reset()
        params = {"query": q, "start": str(s + st), "end": str(e + st), "step": str(st)}
        want_end = (e + st) - (e + st) % st
        c1, b1 = get(qh, "/api/v1/query_range", dict(params, start=str(s + st - (s + st) % st), end=str(want_end)))
        c2, b2 = get(mem, "/api/v1/query_range", params)
        result("mem_shifted_refresh_equals_querier", c1 == 200 and b1 == b2, f"{c1}/{c2}")
        result("mem_shifted_refresh_asks_only_new_step", pmem.ranges == [(want_end, want_end)], f"{pmem.ranges}")
        pmem.reset()
        c2, b3 = get(mem, "/api/v1/query_range", params)
        result("mem_shifted_repeat_equals_querier", c2 == 200 and b3 == b1 and pmem.count == 0,
               f"{c2}, {pmem.count} downstream requests")

        def shifted(k, extra_end=0):
            """The query shifted by k steps (end by k + extra_end): the frontend's answer equals the querier's,
            and only the steps after the cached extents' end are asked downstream."""
            p = {"query": q, "start": str(s + k * st), "end": str(e + (k + extra_end) * st), "step": str(st)}
            a_start, a_end = s + k * st - (s + k * st) % st, e + (k + extra_end) * st - (e + (k + extra_end) * st) % st
            pmem.reset()
            c1, b1 = get(qh, "/api/v1/query_range", dict(p, start=str(a_start), end=str(a_end)))
            c2, b2 = get(mem, "/api/v1/query_range", p)
            return c1 == 200 and c2 == 200 and b1 == b2, pmem.ranges, a_end
        # Shifted once more: the whole days in between come from their ready series, only the new step is asked.
        ok, ranges, a_end = shifted(2)
        result("mem_shifted_twice_equals_querier", ok)
        result("mem_shifted_twice_asks_only_new_step", ranges == [(a_end, a_end)], f"{ranges}")
        # The same start with the end two steps further than anything cached: the new steps are in the answer.
        ok, ranges, a_end = shifted(2, extra_end=2)
        result("mem_extended_end_equals_querier", ok)
        result("mem_extended_end_asks_only_new_steps", ranges == [(a_end - st, a_end)], f"{ranges}")
        # A large answer (raw series, ~600 kB): assembled from ready series it goes out chunked as it is made.
        big = {"query": "req_total", "start": str(START + 61), "end": str(END - 61), "step": "61"}
        big_direct = dict(big, start=str((START + 61) - (START + 61) % 61), end=str((END - 61) - (END - 61) % 61))
        c1, b1 = get(qh, "/api/v1/query_range", big_direct)
        c2, b2 = get(mem, "/api/v1/query_range", big)
        pmem.reset()
        c3, b3 = get(mem, "/api/v1/query_range", big)
        result("mem_large_answer_equals_querier", c1 == c2 == c3 == 200 and len(b1) > 400000 and b1 == b2 == b3,
               f"{c1}/{c2}/{c3}, {len(b1)}/{len(b2)}/{len(b3)} bytes")
        result("mem_large_answer_from_cache", pmem.count == 0, f"{pmem.count} downstream requests")
        run_set(mem, qh, "mem_stats", stats=True)
        # Another tenant has a cache of its own; the same tenant again hits it.
        params = {"query": q, "start": str(s), "end": str(e), "step": str(st)}
        for tenant, want in (("team-b", True), ("team-b", False)):
            pmem.reset()
            c2, b2 = get(mem, "/api/v1/query_range", params, headers={"THANOS-TENANT": tenant})
            result(f"tenant_{tenant}_{'cold' if want else 'warm'}", c2 == 200 and (pmem.count > 0) == want,
                   f"{c2}, {pmem.count} downstream requests")
        # Cache-Control: no-store keeps a request away from the cache.
        pmem.reset()
        c2, b2 = get(mem, "/api/v1/query_range", params, headers={"Cache-Control": "no-store"})
        result("no_store_bypasses_cache", c2 == 200 and pmem.count > 0, f"{pmem.count} downstream requests")
        log.flush()
        with open(log.name) as f:
            result("slow_query_logged", 'msg="slow query detected"' in f.read(), "no slow query line")

        # Labels and series (twice: the second time from the labels cache).
        def meta_checks(tag):
            bad = []
            for path, params in [("/api/v1/labels", {"start": START, "end": END}),
                                 ("/api/v1/label/job/values", {"start": START, "end": END}),
                                 ("/api/v1/label/__name__/values", {"start": D1, "end": D1 + 3600}),
                                 ("/api/v1/series", {"match[]": ["req_total", 'temp{room="a"}'], "start": D1 - 10,
                                                     "end": D1 + DAY}),
                                 ("/api/v1/series", {"match[]": "lat_seconds_count", "start": START, "end": END})]:
                c1, b1 = get(qh, path, params)
                c2, b2 = get(mem, path, params)
                if c1 != 200 or c1 != c2 or b1 != b2:
                    bad.append(f"{path} {params}: {c1} {b1[:100]} / {c2} {b2[:100]}")
            result(tag, not bad, "; ".join(bad[:2]))
        meta_checks("labels_series_equal_querier")
        pmem.reset()
        meta_checks("labels_series_from_cache_equal_querier")
        result("labels_series_second_time_cached", pmem.count == 0, f"{pmem.count} downstream requests")

        # Other paths are proxied.
        for path in ("/api/v1/stores", "/api/v1/status/buildinfo"):
            c1, b1 = get(qh, path)
            c2, b2 = get(plain, path)
            j1, j2 = json.loads(b1), json.loads(b2)
            if path == "/api/v1/stores":
                for v in list(j1["data"].values()) + list(j2["data"].values()):
                    for e_ in v:
                        e_.pop("lastCheck", None)
            result("proxied" + path.replace("/", "_"), c1 == c2 == 200 and j1 == j2, f"{c1}/{c2}")
        c1, b1 = get(qh, "/api/v1/query", {"query": "sum(req_total)", "time": str(D1)})
        c2, b2 = get(plain, "/api/v1/query", {"query": "sum(req_total)", "time": str(D1)})
        result("instant_query_proxied", c1 == c2 == 200 and b1 == b2, f"{c1}/{c2}")
        c1, b1 = get(qh, "/api/v1/query_range", {"query": "sum(", "start": "1", "end": "2", "step": "1"})
        c2, b2 = get(plain, "/api/v1/query_range", {"query": "sum(", "start": "1", "end": "2", "step": "1"})
        result("bad_query_gets_querier_error", c1 == c2 == 400 and b1 == b2, f"{c1} {b1} / {c2} {b2}")

        # MEMCACHED: cold, warm, then memcached killed.
        run_set(mc, qh, "memcached_cold")
        hits0 = metric(mc, "cortex_cache_hits", 'name="frontend.memcache"')
        pmc.reset()
        run_set(mc, qh, "memcached_warm")
        hits = metric(mc, "cortex_cache_hits", 'name="frontend.memcache"') - hits0
        result("memcached_warm_from_cache", pmc.count == 0 and hits >= len(QUERIES),
               f"{pmc.count} downstream requests, {hits} hits")
        pmc.reset()
        run_set(mc, qh, "memcached_ready")
        result("memcached_ready_from_cache", pmc.count == 0, f"{pmc.count} downstream requests")
        stop(memcached)
        run_set(mc, qh, "memcached_killed")

        # Retries.
        q, s, e, st = QUERIES[1]
        params = {"query": q, "start": str(s), "end": str(e), "step": str(st)}
        c1, b1 = get(qh, "/api/v1/query_range", dict(params, start=str(s - s % st), end=str(e - e % st)))
        pretry.reset(fail_next=2)
        c2, b2 = get(retry, "/api/v1/query_range", params)
        result("retry_503_then_ok", c2 == 200 and b1 == b2 and pretry.count >= 4, f"{c2} after {pretry.count} requests")
        pretry.reset(always_fail=True)
        c2, b2 = get(retry, "/api/v1/query_range", params)
        result("always_503_returns_error", c2 == 503 and "injected 503" in b2, f"{c2} {b2[:200]}")
        pretry.reset(fail_next=1, fail_code=400)
        c2, b2 = get(retry, "/api/v1/query_range", {"query": q, "start": str(D1), "end": str(D1 + 600), "step": "60"})
        result("4xx_not_retried", c2 == 400 and pretry.count == 1, f"{c2} after {pretry.count} requests")
        pretry.reset()
        c2, b2 = get(retry, "/api/v1/query_range", params)
        result("retry_metric", metric(retry, "cortex_query_frontend_retries_count") > 0, "no retries observed")

        # Ready follows the downstream.
        stop(querier)
        wait_until(lambda: get(plain, "/-/ready")[0] == 503, None, "frontend not ready after its querier stops", 15)
        result("ready_follows_downstream", True)
    finally:
        for p in procs:
            stop(p)
        log.close()
        if harness.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)


if __name__ == "__main__":
    main()
