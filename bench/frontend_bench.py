#!/usr/bin/python3
"""Query frontend benchmark (issue 18), run by bench/frontend_bench.sh.

Data: FRONTEND_BENCH_DAYS (7) days of promtool blocks, FRONTEND_BENCH_SERIES (120) counter series at
60 s plus a classic histogram, in a FILESYSTEM bucket behind `strata store` and `strata query`; a
`strata query-frontend` (IN-MEMORY cache, 256 MiB, default flags otherwise) in front of the querier.

1. A dashboard of 12 panels over the whole span (step 600 s, like Grafana's ~1,000 points), the 12 range
   queries sent at once, as a browser does: 12 client threads that live for the whole run, each keeping
   its HTTP/1.1 connection to each server open between refreshes (browsers and Grafana's data source proxy
   keep connections alive), the same client for the querier and the frontend. Rounds alternate: direct to the querier, then through a
   freshly started frontend (cold: every piece from the querier, in parallel), then a refresh through
   the warm frontend shifted by one step (only the new step asked downstream), then that refresh
   again (everything from cache). Every cold, warm and repeated answer is checked byte for byte against
   the querier's answer for the same range. Medians of the dashboard's wall time; ratios direct/cold (floor
   0.7: the frontend no slower than 1/0.7 of direct) and warm/direct (target <= 0.05).
2. Frontend CPU per cached response (utime+stime of the process over FRONTEND_BENCH_CACHED requests
   answered wholly from cache), and its RSS with the 256 MiB cache full (raw-series queries at distinct
   steps until querier_cache_memory_bytes reaches the limit).
Prints RESULT lines.
"""
import concurrent.futures, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, \
    time, urllib.parse, urllib.request

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
DAYS = int(os.environ.get("FRONTEND_BENCH_DAYS", "7"))
SERIES = int(os.environ.get("FRONTEND_BENCH_SERIES", "120"))
ROUNDS = int(os.environ.get("FRONTEND_BENCH_ROUNDS", "5"))
CACHED = int(os.environ.get("FRONTEND_BENCH_CACHED", "200"))
STEP = 600
END = (int(time.time()) // 3600 - 2) * 3600
START = END - DAYS * 86400
procs = []
PANELS = [
    "sum(rate(bench_total[5m]))",
    "sum by (job) (rate(bench_total[5m]))",
    "topk(5, rate(bench_total[10m]))",
    "avg by (instance) (rate(bench_total[5m]))",
    "max_over_time(sum(rate(bench_total[5m]))[1h:5m])",
    "histogram_quantile(0.99, sum by (le) (rate(lat_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le) (rate(lat_seconds_bucket[5m])))",
    "sum(rate(lat_seconds_count[5m]))",
    "count(bench_total) by (job)",
    "sum(increase(bench_total[1h]))",
    "quantile(0.9, rate(bench_total[5m]))",
    "sum by (job) (bench_total) - sum by (job) (bench_total offset 1h)",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ready(port, p, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).status == 200:
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if p.poll() is not None:
            raise RuntimeError(f"{p.args[:2]} exited with {p.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{p.args[:2]} not ready")


def start(args, log):
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def gen(tmp):
    om = os.path.join(tmp, "in.om")
    with open(om, "w") as f:
        f.write("# TYPE bench counter\n# TYPE lat_seconds histogram\n")
        for k, t in enumerate(range(START, END, 60)):
            for s in range(SERIES):
                f.write(f'bench_total{{job="j{s % 6}",instance="i{s:03d}"}} {k * (1 + s % 7) + (k // 333) * (s % 3)} {t}\n')
            c = [k * 2, k * 5, k * 7, k * 8]
            for b, v in zip(["0.1", "0.5", "1", "+Inf"], c):
                f.write(f'lat_seconds_bucket{{le="{b}"}} {v} {t}\n')
            f.write(f"lat_seconds_count {c[-1]} {t}\n")
        f.write("# EOF\n")
    out = os.path.join(tmp, "blocks")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.unlink(om)
    return out


# The client: HTTP/1.1 over keep-alive connections, one per client thread and server (a restarted server
# gets new ones: generation), answers read with recv_into into a buffer the thread keeps and their framing
# (Content-Length or chunked) walked in place, so that reading a 3.7 MB answer costs the client about
# what it would cost a browser, not http.client's per-chunk Python work (at 12 panels that was as much
# CPU as the frontend's own on this 2-core box). The same client for the querier and the frontend.
client = threading.local()
generation = {}


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The thread's buffer, shared by its connections (one answer at a time per thread): a buffer per
        # connection made every fresh frontend's first answers pay for growing new 1 MiB buffers to the
        # 3.7 MB panel (allocating, zeroing and copying in the client, ~1-2 ms of a refresh), which the
        # querier's connections, kept for the whole run, had paid once.
        self.buf = client.__dict__.setdefault("buf", bytearray(1 << 20))
        self.n = 0  # bytes in buf (a response's start at 0)

    def fill(self, need):
        """Until buf holds at least need bytes."""
        while self.n < need:
            if self.n == len(self.buf):
                self.buf.extend(bytes(len(self.buf)))
            with memoryview(self.buf) as mv:
                k = self.sock.recv_into(mv[self.n:])
            if not k:
                raise RuntimeError("connection closed mid-answer")
            self.n += k

    def find(self, what, pos):
        """Index of what at or after pos, reading more as needed."""
        while True:
            i = self.buf.find(what, pos, self.n)
            if i >= 0:
                return i
            self.fill(self.n + 1)

    def post(self, path, body):
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                          f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        end = self.find(b"\r\n\r\n", 0)
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        h = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in head[1:])}
        pos, parts = end + 4, []
        if h.get("transfer-encoding", "").lower() == "chunked":
            while True:
                eol = self.find(b"\r\n", pos)
                size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
                pos = eol + 2
                self.fill(pos + size + 2)
                if size == 0:  # no trailers: the blank line ends the answer
                    if self.buf[pos:pos + 2] != b"\r\n":
                        raise RuntimeError("trailers after a chunked answer")
                    pos += 2
                    break
                parts.append((pos, pos + size))
                pos += size + 2
        else:
            size = int(h.get("content-length", "0"))
            self.fill(pos + size)
            parts.append((pos, pos + size))
            pos += size
        with memoryview(self.buf) as mv:
            out = b"".join(mv[a:b] for a, b in parts)
        rest = self.n - pos  # nothing is pipelined: no bytes after the answer
        if rest:
            raise RuntimeError(f"{rest} bytes after the answer")
        self.n = 0
        return status, out, h.get("connection", "").lower() == "close"

    def close(self):
        self.sock.close()


def query(port, q, s, e, step):
    conns = client.__dict__.setdefault("conns", {})
    key = (port, generation.get(port, 0))
    c = conns.get(key)
    if c is None:
        c = conns[key] = Conn(port)
    status, body, close = c.post("/api/v1/query_range",
                                 urllib.parse.urlencode({"query": q, "start": s, "end": e, "step": step}).encode())
    if close:
        c.close()
        del conns[key]
    if status != 200:
        raise RuntimeError(f"{q}: {status}")
    return body


pool = concurrent.futures.ThreadPoolExecutor(len(PANELS))


def dashboard(port, shift=0):
    t0 = time.perf_counter()
    bodies = list(pool.map(lambda q: query(port, q, START + shift, END + shift, STEP), PANELS))
    return time.perf_counter() - t0, bodies


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines() if l.startswith(name + "{") or l.startswith(name + " "))


def main():
    tmp = tempfile.mkdtemp(prefix="strata-frontend-bench.")
    log = open(os.path.join(tmp, "procs.log"), "w")
    try:
        t0 = time.time()
        blocks = gen(tmp)
        print(f"blocks: {DAYS} days x {SERIES + 6} series in {time.time() - t0:.0f}s", flush=True)
        bdir = os.path.join(tmp, "bucket")
        os.makedirs(bdir)
        cfg = f"type: FILESYSTEM\nconfig:\n  directory: {bdir}\n"
        subprocess.run([STRATA, "tools", "bucket", "upload-blocks", "--objstore.config=" + cfg, "--path=" + blocks, "--label=cluster=\"bench\""],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sg, sh, qh, qg = free_port(), free_port(), free_port(), free_port()
        st = start([STRATA, "store", "--objstore.config=" + cfg, "--data-dir=" + os.path.join(tmp, "data"),
                    f"--grpc-address=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{sh}"], log)
        wait_ready(sh, st)
        qp = start([STRATA, "query", f"--endpoint=127.0.0.1:{sg}", f"--http-address=127.0.0.1:{qh}",
                    f"--grpc-address=127.0.0.1:{qg}"], log)
        wait_ready(qh, qp)
        fport = free_port()
        fargs = [STRATA, "query-frontend", f"--http-address=127.0.0.1:{fport}",
                 f"--query-frontend.downstream-url=http://127.0.0.1:{qh}", "--http-grace-period=1s",
                 "--query-range.response-cache-config=type: IN-MEMORY\nconfig:\n  max_size: 256MiB\n"]
        dashboard(qh)  # warm the store gateway's caches and the page cache for both paths alike
        direct, cold, warm, hit = [], [], [], []
        fe = None
        for r in range(ROUNDS):
            d, want = dashboard(qh)
            direct.append(d)
            if fe:
                stop(fe)
            generation[fport] = r  # the new frontend: new connections
            fe = start(fargs, log)
            wait_ready(fport, fe)
            c, got = dashboard(fport)
            cold.append(c)
            if got != want:
                raise RuntimeError("frontend answer differs from the querier's")
            w, got_w = dashboard(fport, shift=STEP)
            warm.append(w)
            h, got_h = dashboard(fport, shift=STEP)
            hit.append(h)
            _, want_w = dashboard(qh, shift=STEP)  # untimed: the shifted refresh asked of the querier
            if got_w != want_w:
                raise RuntimeError("frontend's warm refresh differs from the querier's")
            if got_h != want_w:
                raise RuntimeError("frontend's repeated refresh differs from the querier's")
            print(f"round {r}: direct {d * 1000:.0f} ms, cold {c * 1000:.0f} ms, warm refresh {w * 1000:.1f} ms, "
                  f"repeat {h * 1000:.1f} ms", flush=True)
        md, mcold, mwarm, mhit = (statistics.median(x) for x in (direct, cold, warm, hit))
        print(f"RESULT frontend_dashboard_direct_ms {md * 1000:.0f} ms 12 panels x {DAYS}d, step {STEP}s, median of {ROUNDS}")
        print(f"RESULT frontend_dashboard_cold_ms {mcold * 1000:.0f} ms through a fresh frontend")
        print(f"RESULT frontend_dashboard_warm_ms {mwarm * 1000:.1f} ms refresh shifted by one step")
        print(f"RESULT frontend_cold_speed_vs_direct {md / mcold:.2f} x (floor 0.7)")
        print(f"RESULT frontend_dashboard_repeat_ms {mhit * 1000:.1f} ms the same refresh again (every piece from cache)")
        print(f"RESULT frontend_warm_latency_vs_direct {mwarm / md:.3f} x (refresh shifted by a step; target <= 0.05)")
        print(f"RESULT frontend_repeat_latency_vs_direct {mhit / md:.3f} x (all from cache; target <= 0.05)")

        def perf_start(env):
            if not os.environ.get(env):
                return None
            p = subprocess.Popen(["perf", "record", "-g", "-o", os.environ[env], "-p", str(fe.pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            return p

        # CPU per warm refresh: the dashboard shifted by 2, 3, ... steps, each panel asking for one new step
        # (FRONTEND_BENCH_PERF_WARM=<file>: recorded with perf). Within the 2 h before now the data cannot change.
        perf = perf_start("FRONTEND_BENCH_PERF_WARM")
        c0, n = cpu_s(fe.pid), 0
        t0 = time.perf_counter()
        for k in range(2, 12):
            for q in PANELS:
                query(fport, q, START + k * STEP, END + k * STEP, STEP)
                n += 1
        wall = time.perf_counter() - t0
        cpu = cpu_s(fe.pid) - c0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        print(f"RESULT frontend_cpu_per_warm_refresh_ms {cpu / n * 1000:.2f} ms "
              f"({n} panels refreshed one step later each, {wall / n * 1000:.2f} ms wall each)")

        # CPU per cached response (FRONTEND_BENCH_PERF=<file>: recorded with perf for profiling).
        perf = perf_start("FRONTEND_BENCH_PERF")
        c0 = cpu_s(fe.pid)
        t0 = time.perf_counter()
        for i in range(CACHED):
            query(fport, PANELS[i % len(PANELS)], START + STEP, END + STEP, STEP)
        wall = time.perf_counter() - t0
        cpu = cpu_s(fe.pid) - c0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        print(f"RESULT frontend_cpu_per_cached_response_ms {cpu / CACHED * 1000:.2f} ms "
              f"({CACHED} responses from cache, {wall / CACHED * 1000:.2f} ms wall each)")
        if os.environ.get("FRONTEND_BENCH_SKIP_RSS"):  # profiling runs
            return

        # RSS with the cache full: raw series at distinct steps until the cache holds 256 MiB.
        step = 60
        t0 = time.time()
        while metric(fport, "querier_cache_memory_bytes") < 250 * 1024 * 1024 and time.time() - t0 < 600:
            query(fport, "bench_total", START, END, step)
            step += 1
        cache = metric(fport, "querier_cache_memory_bytes") / 1048576
        print(f"RESULT frontend_rss_cache_full_mib {rss_mib(fe.pid):.0f} MiB with {cache:.0f} MiB in the IN-MEMORY cache "
              f"({metric(fport, 'querier_cache_entries'):.0f} entries)")
    finally:
        for p in procs:
            stop(p)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
