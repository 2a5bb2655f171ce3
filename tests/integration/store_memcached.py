#!/usr/bin/python3
"""`strata store` with a MEMCACHED index cache over two real memcached servers.

promtool makes two 2h blocks (240 series) that are uploaded to a FILESYSTEM bucket. Two memcached
(/usr/bin/memcached -U 0, free 127.0.0.1 ports) back one store via --index-cache.config MEMCACHED
(small multi-get batches, so batching is exercised); a second store over the same bucket has no index
cache. Each store has a `strata query` in front. Checks: every query gives the same answer through
both; both memcached servers hold items (`stats` curr_items); repeating the queries hits the cache
(thanos_store_index_cache_hits_total grows for Postings and Series) with the same answers; after one
memcached is killed the answers stay the same, failures are counted and the other server still
serves hits; bad cache YAML makes `strata store` exit non-zero with a message naming line:column.
Every process we start is stopped by PID on exit.
"""
import ctypes, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop, wait_ready, wait_until

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
harness = Harness("store_memcached")
result, check = harness.result, harness.check
procs = []


def promtool_blocks(tmp):
    base = (int(time.time()) // 7200 - 10) * 7200
    om = os.path.join(tmp, "in.om")
    lines = []
    for w in (0, 1):
        for i in range(0, 7200, 120):
            t = base + w * 7200 + i
            for s in range(240):
                lines.append(f'm_total{{job="j{s % 4}",inst="i{s:03d}",zone="z{s % 7}"}} {t % 997 + s * 3} {t}\n')
    with open(om, "w") as f:
        f.write("# TYPE m counter\n")
        f.writelines(lines)
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, base


def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan even if we are killed


def start(args, log):
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    procs.append(p)
    return p


def memcached(log):
    port = free_port()
    args = ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "32", "-t", "1"]
    if os.getuid() == 0:
        args += ["-u", "nobody"]  # memcached refuses to run as root otherwise
    p = start(args, log)
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, p, "memcached")
    return p, port


def mc_stats(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"stats\r\n")
    buf = b""
    while not buf.endswith(b"END\r\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return {l.split()[1]: l.split()[2] for l in buf.decode().splitlines() if l.startswith("STAT ")}


def metric(port, name, labels=""):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if (l.startswith(name + "{") or l.startswith(name + " ")) and labels in l)


def query(qport, expr, params):
    q = dict(params, query=expr)
    path = "query_range" if "step" in params else "query"
    with urllib.request.urlopen(f"http://127.0.0.1:{qport}/api/v1/{path}?" + urllib.parse.urlencode(q), timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]


def serve(tmp, name, objcfg, extra):
    sg, sh, qg, qh = free_port(), free_port(), free_port(), free_port()
    log = open(os.path.join(tmp, f"store-{name}.log"), "w")
    st = start([STRATA, "store", "--objstore.config=" + objcfg, "--data-dir=" + os.path.join(tmp, "data-" + name),
                f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}", "--http-grace-period=1s",
                *extra], log)
    wait_ready(sh, st, "strata store " + name)
    qlog = open(os.path.join(tmp, f"query-{name}.log"), "w")
    qp = start([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                f"--grpc-address=127.0.0.1:{qg}", "--http-grace-period=1s", "--grpc-grace-period=1s",
                "--store.sd-dns-interval=1s"], qlog)
    return st, sh, qp, qh


def main():
    tmp = tempfile.mkdtemp(prefix="strata-storemc.")
    try:
        blocks, base = promtool_blocks(tmp)
        fsdir = os.path.join(tmp, "fs")
        objcfg = f"type: FILESYSTEM\nconfig: {{directory: {fsdir}}}"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + objcfg, "--path=" + blocks,
                        '--label=cluster="eu1"'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mlog = open(os.path.join(tmp, "memcached.log"), "w")
        (_, p1), (m2, p2) = memcached(mlog), memcached(mlog)
        cache = (f"type: MEMCACHED\nconfig:\n  addresses: [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]\n"
                 "  timeout: 500ms\n  max_get_multi_batch_size: 20\n  max_get_multi_concurrency: 4\n"
                 "  max_async_concurrency: 4\nttl: 1h\n")
        _, sh, qc, qport_cached = serve(tmp, "memcached", objcfg, ["--index-cache.config=" + cache])
        _, _, qn, qport_plain = serve(tmp, "nocache", objcfg, ["--index-cache-size=0"])
        t_mid = base + 7200 + 1800
        for qp, qport in ((qc, qport_cached), (qn, qport_plain)):
            wait_until(lambda: query(qport, "count(m_total)", {"time": t_mid})["result"], qp, "strata query")
        queries = [
            ("count(m_total)", {"time": t_mid}),
            ("sum by (job) (m_total)", {"time": t_mid}),
            ('m_total{inst="i042"}', {"time": base + 600}),
            ('sum by (zone) (rate(m_total{job=~"j1|j3",zone!="z2"}[10m]))',
             {"start": base + 900, "end": base + 2 * 7200 - 60, "step": 600}),
            ('count by (job) (m_total{inst=~"i0[0-4].*"})', {"time": base + 7200 - 30}),
            ('max_over_time(m_total{zone="z5",job!="j0"}[30m])', {"time": t_mid}),
            ('m_total{inst="nope"}', {"time": t_mid}),
        ]

        def compare(tag):
            bad = []
            for expr, params in queries:
                a, b = query(qport_cached, expr, params), query(qport_plain, expr, params)
                if a != b:
                    bad.append(f"{expr}: memcached {json.dumps(a)[:200]} != no cache {json.dumps(b)[:200]}")
            assert not bad, f"{len(bad)} differ ({tag}); first: {bad[0]}"
            assert query(qport_plain, "count(m_total)", {"time": t_mid})["result"][0]["value"][1] == "240"

        check("first_queries_equal_no_cache", lambda: compare("cold"))

        def t_items_on_both():
            def both():
                return int(mc_stats(p1)["curr_items"]) > 0 and int(mc_stats(p2)["curr_items"]) > 0
            try:
                wait_until(both, None, "items on both memcached", timeout=5)
            except RuntimeError:
                raise AssertionError(f"curr_items {mc_stats(p1)['curr_items']} / {mc_stats(p2)['curr_items']}")
        check("memcached_holds_items_on_both_servers", t_items_on_both)

        hits = {t: metric(sh, "thanos_store_index_cache_hits_total", f'item_type="{t}"') for t in ("Postings", "Series")}
        check("second_queries_equal_no_cache", lambda: compare("warm"))

        def t_hits_grow():
            for t in hits:
                now = metric(sh, "thanos_store_index_cache_hits_total", f'item_type="{t}"')
                assert now > hits[t], f"{t} hits {hits[t]} -> {now}"
            gets = metric(sh, "thanos_memcached_operations_total", 'operation="getmulti"')
            assert gets > 0, "no getmulti operations counted"
        check("second_queries_hit_cache", t_hits_grow)

        # one memcached dies: answers unchanged, failures counted, the other still serves hits
        fails = metric(sh, "thanos_memcached_operation_failures_total")
        m2.send_signal(signal.SIGKILL)
        m2.wait()
        h_before = metric(sh, "thanos_store_index_cache_hits_total")
        t0 = time.time()
        check("queries_equal_with_one_memcached_dead", lambda: compare("one dead"))

        def t_fast():  # a refused connection is a miss at once, not a wait for the timeout
            el = time.time() - t0
            assert el < 10, f"{len(queries)} queries took {el:.1f}s"
        check("queries_with_one_memcached_dead_are_fast", t_fast)

        def t_dead_counted():
            assert metric(sh, "thanos_memcached_operation_failures_total") > fails, "no failures counted"
            assert metric(sh, "thanos_store_index_cache_hits_total") > h_before, "no hits from the live server"
        check("dead_memcached_counted_live_one_hits", t_dead_counted)

        # bad configuration: clear message, non-zero exit, no hang
        bad = [
            ("type: MEMCACHED\nconfig:\n  addresses: [\"127.0.0.1:1\"]\n  max_idel_connections: 5\n",
             "4:3: unknown key: max_idel_connections"),
            ("type: MEMCACHED\nconfig:\n  addresses: [\"dnssrv+_memcached._tcp.example.com\"]\n", "DNS SRV"),
            ("type: MEMCACHED\nconfig:\n  addresses: \"127.0.0.1:1\"\n", "3:14: addresses must be a list"),
            ("type: MEMCACHED\nconfig: {addresses: [a:1], timeout: soon}\n", "timeout: invalid duration"),
            ("type: REDIS\nconfig: {addr: x}\n", "unsupported index cache type"),
        ]
        for i, (yaml, want) in enumerate(bad):
            def t_bad(yaml=yaml, want=want):
                r = subprocess.run([STRATA, "store", "--objstore.config=" + objcfg,
                                    "--data-dir=" + os.path.join(tmp, "data-bad"), "--index-cache.config=" + yaml,
                                    f"--grpc-address=127.0.0.1:{free_port()}", f"--http-address=127.0.0.1:{free_port()}"],
                                   capture_output=True, text=True, timeout=15)
                assert r.returncode != 0, "exit status 0"
                assert "--index-cache.config" in r.stderr and want in r.stderr, r.stderr.strip()[-300:]
            check(f"bad_config_{i}", t_bad)
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # tests/run's timeout: still stop what we started
    t0 = time.time()
    try:
        main()
    except Exception as e:  # noqa: BLE001 - setup failure is a test failure
        result("setup", False, f"{type(e).__name__}: {e}")
    print(f"store_memcached: {time.time() - t0:.1f}s")
    raise SystemExit(1 if harness.failed else 0)
