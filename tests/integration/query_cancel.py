#!/usr/bin/python3
"""`strata query` cancels a query whose client went away.

Data: store_testserver (an in-memory StoreAPI over gRPC) with 8,000 extra series of 240 samples;
`strata query` with --query.max-concurrent=1 in front of it. The slow query is
sum(quantile_over_time(0.5, load_series[1h])) over 9,001 steps (step 0.4s, under the 11,000-point
limit): quantile copies and sorts every window, about 15 s on an idle 2-core machine. (The 3,601-step
[5m] query it replaces took 2 s once the read path got faster, so CI answered it inside the deadline.)

  (1) the query really is slow: with timeout=3s it fails with "query timed out in query execution"
      after >= 3 s (so without cancellation it would hold the only query slot at least that long);
  (2) a client sends it on a raw socket and closes the socket 0.5 s later: within 2 s of the close the
      querier has finished the request as canceled (http_requests_total{code="503",
      handler="/api/v1/query_range"} in /metrics goes up by one), and a quick query sent right after
      the close (it queues behind the slow one for the single slot) is answered within 2.5 s.
Everything binds 127.0.0.1 on free ports; processes are stopped by PID.
"""
import os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request
from lib_harness import Harness, free_port, stop

ROOT = os.environ.get("STRATA_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
STRATA = os.environ.get("STRATA_BIN", os.path.join(ROOT, "build", "strata"))
TEST_BIN = os.environ.get("STRATA_TEST_BIN", os.path.join(ROOT, "build", "tests"))
NAME = "query_cancel"
SLOW = {"query": "sum(quantile_over_time(0.5, load_series[1h]))", "start": "0", "end": "3600", "step": "0.4"}
harness = Harness(NAME)
result, check = harness.result, harness.check
procs = []


def get(port, path, params=None, timeout=60):
    url = f"http://127.0.0.1:{port}{path}"
    data = urllib.parse.urlencode(params).encode() if params is not None else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def canceled_count(port):
    _, body = get(port, "/metrics")
    n = 0
    for line in body.splitlines():
        if line.startswith("http_requests_total{") and 'code="503"' in line and 'handler="/api/v1/query_range"' in line:
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def main():
    tmp = tempfile.mkdtemp(prefix="strata-query-cancel.")
    keep = False
    try:
        log = open(os.path.join(tmp, "store.log"), "w")
        store = subprocess.Popen([os.path.join(TEST_BIN, "store_testserver"), "127.0.0.1:0", "8000"],
                                 stdout=subprocess.PIPE, stderr=log, text=True)
        procs.append((store, log))
        line = store.stdout.readline()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise RuntimeError(f"store_testserver printed {line!r}")
        sport = int(m.group(1))
        qport, qgrpc = free_port(), free_port()
        qlog = open(os.path.join(tmp, "query.log"), "w")
        q = subprocess.Popen([STRATA, "query", f"--http-address=127.0.0.1:{qport}", f"--grpc-address=127.0.0.1:{qgrpc}",
                              f"--endpoint=127.0.0.1:{sport}", "--query.max-concurrent=1", "--http-grace-period=1s",
                              "--grpc-grace-period=1s"], stdout=qlog, stderr=subprocess.STDOUT)
        procs.append((q, qlog))
        t0 = time.time()
        while True:
            try:
                st, body = get(qport, "/api/v1/query", {"query": "count(load_series)", "time": "600"}, timeout=5)
                if st == 200 and '"8000"' in body:
                    break
            except OSError:
                pass
            if q.poll() is not None or time.time() - t0 > 30:
                raise RuntimeError(f"strata query not ready with 8000 series (exit {q.poll()})")
            time.sleep(0.2)

        def t_slow():
            t = time.time()
            st, body = get(qport, "/api/v1/query_range", {**SLOW, "timeout": "3s"})
            took = time.time() - t
            assert st == 503 and "query timed out in query execution" in body, (st, body)
            assert took >= 3, took
            assert took < 8, f"the deadline took {took:.1f}s to be noticed"
        check("slow_query_runs_until_its_deadline", t_slow)

        def t_cancel():
            before = canceled_count(qport)
            s = socket.create_connection(("127.0.0.1", qport))
            body = urllib.parse.urlencode(SLOW).encode()
            s.sendall(b"POST /api/v1/query_range HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.5)
            s.close()
            closed = time.time()
            # A quick query queued behind the slow one for the single slot.
            st, qbody = get(qport, "/api/v1/query", {"query": "count(load_series)", "time": "600"}, timeout=30)
            quick = time.time() - closed
            assert st == 200 and '"8000"' in qbody, (st, qbody)
            while canceled_count(qport) == before and time.time() - closed < 30:
                time.sleep(0.05)
            gone = time.time() - closed
            assert canceled_count(qport) == before + 1, "the slow request never finished as canceled (503)"
            assert gone < 2, f"cancelled {gone:.2f}s after the client closed"
            assert quick < 2.5, f"the queued quick query waited {quick:.2f}s"
            print(f"{NAME}: canceled {gone:.2f}s after the client closed; queued query answered after {quick:.2f}s")
        check("disconnect_cancels_query", t_cancel)

        def t_clean_exit():
            stop(q)
            assert q.returncode == 0, q.returncode
        check("query_exits_cleanly", t_clean_exit)
    except Exception as e:  # noqa: BLE001 - setup failure
        result("setup", False, f"{type(e).__name__}: {e}")
        keep = True
    finally:
        for p, f in procs:
            stop(p)
            f.close()
        if harness.failed or keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{NAME}: {harness.failed} failed")
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
