#!/bin/bash
# http_server.sh — the net/ HTTP server end to end, through tests/programs/http_testserver:
# flags, /metrics (validated by promtool), /-/healthy, /-/ready, 1,000 keep-alive requests,
# pipelining order, form/query decoding, streaming, worker pool not blocking the loop, malformed
# requests (bad request line, oversized headers/body, slowloris), and SIGTERM draining.
. "$(dirname "$0")/lib.sh"

SRV=$STRATA_TEST_BIN/http_testserver
[ -x "$SRV" ] || { fail setup "missing $SRV (build first)"; finish; }

# --- flags: unknown flags and bad values exit 2 naming the flag ---
out=$("$SRV" --no-such-flag 2>&1); rc=$?
check flags_unknown_exit2 test "$rc" -eq 2
check flags_unknown_named grep -q -- "no-such-flag" <<<"$out"
out=$("$SRV" --http-grace-period=soon 2>&1); rc=$?
check flags_bad_duration_exit2 test "$rc" -eq 2
check flags_bad_duration_named grep -q -- "http-grace-period" <<<"$out"
out=$("$SRV" --log.level=loud 2>&1); rc=$?
check flags_bad_enum_exit2 test "$rc" -eq 2
out=$("$SRV" --help 2>&1); rc=$?
check flags_help test "$rc" -eq 0 -a -n "$(grep -- '--http-address' <<<"$out")"
out=$("$SRV" --http-address=256.1.1.1:x 2>&1); rc=$?
check bad_listen_address_fails test "$rc" -ne 0 -a -n "$(grep -- '256.1.1.1:x' <<<"$out")"

# --- readiness gate: 503 until the component says ready ---
port=$(free_port)
start_bg ready "$SRV" --http-address=127.0.0.1:$port --ready-after=1500ms
if wait_url "http://127.0.0.1:$port/-/healthy" 10; then
	check ready_503_before test "$(http_code "http://127.0.0.1:$port/-/ready")" = 503
	check ready_200_after wait_url "http://127.0.0.1:$port/-/ready" 10 200
else
	fail ready_gate "server did not start: $(tail -3 "$TEST_TMP/ready.log")"
fi
stop_pid "${BG_PID_OF[ready]}" 5

# --- main server ---
port=$(free_port)
base="http://127.0.0.1:$port"
start_bg srv "$SRV" --http-address=127.0.0.1:$port --http.read-timeout=1s --http.idle-timeout=30s \
	--http.max-header-bytes=8KiB --http.max-body-bytes=64KiB --workers=2 --http-grace-period=10s
if ! wait_url "$base/-/ready" 10; then
	fail startup "server did not become ready: $(tail -5 "$TEST_TMP/srv.log")"
	finish
fi
pid=${BG_PID_OF[srv]}

check healthy_ok test "$(curl -s -m 5 "$base/-/healthy")" = OK

# Python drives everything that needs raw sockets or precise timing.
"$PY" - "$port" "$pid" <<'PYEOF'
import http.client, socket, sys, threading, time

PORT = int(sys.argv[1])
SRV_PID = int(sys.argv[2])
failed = 0

def result(name, ok, why=""):
    global failed
    if ok:
        print("PASS http_server:%s" % name)
    else:
        failed += 1
        print("FAIL http_server:%s: %s" % (name, why))
    sys.stdout.flush()

def raw(data, read_timeout=5.0, pause=None):
    """Send bytes, read until the server closes (or timeout). Returns (bytes, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=read_timeout)
    try:
        try:
            for part in (data if isinstance(data, list) else [data]):
                s.sendall(part)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server gave up on us (what the slowloris test wants); read what it said
        out = b""
        closed = False
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    closed = True
                    break
                out += b
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
        return out, closed
    finally:
        s.close()

def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except Exception:
        return None

# 1,000 requests on one keep-alive connection.
try:
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    ok = 0
    sock = None
    same = True
    t0 = time.time()
    for i in range(1000):
        c.request("GET", "/fast")
        r = c.getresponse()
        body = r.read()
        if r.status == 200 and body == b"fast\n":
            ok += 1
        if sock is None:
            sock = c.sock
        elif c.sock is not sock:
            same = False
    dt = time.time() - t0
    c.close()
    result("keepalive_1000", ok == 1000 and same, "ok=%d same_connection=%s" % (ok, same))
    print("# 1000 keep-alive requests in %.2fs" % dt)
except Exception as e:
    result("keepalive_1000", False, repr(e))

# Pipelining: three requests in one write; the slow one first, responses must keep request order.
req = (b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
       b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
       b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
out, closed = raw(req)
i_slow, i_fast, i_echo = out.find(b"slow\n"), out.find(b"fast\n"), out.find(b"n=3\n")
result("pipelining_in_order", out.count(b"HTTP/1.1 200 OK") == 3 and -1 < i_slow < i_fast < i_echo and closed,
       repr(out[:400]))

# Pipelined requests from a client that half-closes after sending are still all answered.
s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
s.close()
result("pipelining_after_half_close", out.count(b"fast\n") == 2, repr(out[:300]))

# Query and form decoding with repeated keys (match[]) and percent-decoding.
c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
c.request("POST", "/echo?match[]=up&q=%7Bjob%3D%22a%22%7D",
          body="match%5B%5D=rate(x%5B5m%5D)&b=1+2", headers={"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse()
body = r.read().decode()
want = 'match[]=up\nq={job="a"}\nmatch[]=rate(x[5m])\nb=1 2\n'
result("form_and_query_decoding", r.status == 200 and body == want, repr(body))
c.request("GET", "/echo?bad=%zz")
r = c.getresponse()
body = r.read().decode()
result("bad_query_escape_400", r.status == 400 and "%zz" in body, "%d %r" % (r.status, body))
c.request("PUT", "/fast")
r = c.getresponse()
r.read()
result("method_not_allowed_405", r.status == 405 and r.getheader("Allow") == "GET, HEAD",
       "%d %s" % (r.status, r.getheader("Allow")))
c.request("GET", "/no/such/path")
r = c.getresponse()
r.read()
result("not_found_404", r.status == 404, str(r.status))
c.request("HEAD", "/fast")
r = c.getresponse()
body = r.read()
result("head_has_length_no_body", r.status == 200 and r.getheader("Content-Length") == "5" and body == b"",
       "%d %r %r" % (r.status, r.getheader("Content-Length"), body))
# Chunked request body.
c.putrequest("POST", "/body")
c.putheader("Transfer-Encoding", "chunked")
c.endheaders()
c.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
r = c.getresponse()
body = r.read()
result("chunked_request_body", r.status == 200 and body == b"11\n", "%d %r" % (r.status, body))
# Streaming (chunked) response.
c.request("GET", "/stream?n=4&ms=20")
r = c.getresponse()
body = r.read().decode()
result("streamed_chunked_response", r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
       and body == "line 0\nline 1\nline 2\nline 3\n", repr(body))
# Streamed from a worker: every part, in order, chunked, with the worker's header; then the connection
# still serves the next request.
c.request("GET", "/wstream?n=300&size=10000")
r = c.getresponse()
body = r.read()
parts = body.split(b"\n")[:-1]
result("worker_stream_complete", r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
       and r.getheader("X-Made-By") == "worker" and len(parts) == 300
       and all(p.startswith(b"%d:" % i) and len(p) == 9999 for i, p in enumerate(parts)), "%d parts" % len(parts))
c.request("GET", "/fast")
r = c.getresponse()
result("worker_stream_keepalive", r.read() == b"fast\n")
c.close()

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def made():
    c2 = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c2.request("GET", "/wstream_made")
    v = int(c2.getresponse().read())
    c2.close()
    return v

# A client that stops reading: the worker waits instead of queueing 400 MB (RSS stays within a few MiB
# of what it was; without back-pressure it would grow by the whole response); after the client goes
# away, the worker stops producing.
s = socket.create_connection(("127.0.0.1", PORT))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
before = rss_kib(SRV_PID)
s.sendall(b"GET /wstream?n=40000&size=10000 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(1.5)
grown = rss_kib(SRV_PID) - before
s.close()
deadline = time.time() + 10
while made() < 0 and time.time() < deadline:
    time.sleep(0.05)
m = made()
result("worker_stream_backpressure_bounded", grown < 16 * 1024, "RSS grew by %d KiB while the client did not read" % grown)
result("worker_stream_stops_when_client_gone", 0 <= m < 40000, "made %d of 40000 parts" % m)

# Answers workers write to the socket themselves, pipelined with loop answers: request order kept, the
# last one closes the connection.
req = (b"GET /work?n=10&sleep_ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
       b"GET /wstream?n=3&size=100 HTTP/1.1\r\nHost: x\r\n\r\n"
       b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
       b"GET /work?n=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
out, closed = raw(req)
i_w1, i_ws, i_fast, i_w2 = out.find(b"19.306001"), out.find(b"2:...."), out.find(b"fast\n"), out.find(b"4.146264")
result("worker_answers_pipelined_in_order", out.count(b"HTTP/1.1 200 OK") == 4 and -1 < i_w1 < i_ws < i_fast < i_w2
       and out.endswith(b"4.146264\n") and b"0\r\n\r\n" in out and closed, repr(out[:600]))

# A worker's stream larger than the socket takes while the client is not reading: what does not fit
# goes through the loop, in order, nothing lost (each part is checked); the connection then serves on.
s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /wstream?n=200&size=50000 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.5)
f = s.makefile("rb")
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += f.read(1)
body = b""
while True:
    n = int(f.readline().strip(), 16)
    if n == 0:
        f.readline()
        break
    body += f.read(n)
    f.read(2)
parts = body.split(b"\n")[:-1]
s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
after = f.read(len(b"HTTP/1.1 200 OK"))
result("worker_stream_slow_reader_complete", b"200 OK" in head and len(parts) == 200 and
       all(p.startswith(b"%d:" % i) and len(p) == 49999 for i, p in enumerate(parts)) and after == b"HTTP/1.1 200 OK",
       "%d parts, then %r" % (len(parts), after))
s.close()

# A client that resets its connection while a worker writes a large answer: the worker stops, and the
# connections opened right after (which may get the same descriptor) get only their own answers.
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /wstream?n=2000&size=100000 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    clean = True
    for _ in range(4):
        out, closed = raw(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        clean = clean and status_of(out) == 200 and out.endswith(b"\r\n\r\nfast\n") and out.count(b"HTTP/1.1") == 1
    if not clean:
        break
result("worker_reset_client_no_crosstalk", clean, repr(out[:300]))

# HTTP/1.0 without keep-alive: answered, then closed.
out, closed = raw(b"GET /fast HTTP/1.0\r\n\r\n")
result("http10_close", status_of(out) == 200 and out.endswith(b"fast\n") and closed, repr(out))
out, closed = raw(b"GET /stream?n=2&ms=1 HTTP/1.0\r\n\r\n")
result("http10_stream_close_delimited", out.endswith(b"line 0\nline 1\n") and b"chunked" not in out and closed,
       repr(out))

# Malformed requests: right 4xx and/or a closed connection, never a crash.
out, closed = raw(b"GARBAGE\r\n\r\n")
result("bad_request_line_400", status_of(out) == 400 and closed, repr(out[:200]))
for name, hdr in [("no_colon", b"NoColonHere"), ("space_in_name", b"Bad Name: v"),
                  ("bad_content_length", b"Content-Length: abc"), ("nul_in_value", b"X-A: b\x00c")]:
    out, closed = raw(b"GET /fast HTTP/1.1\r\nHost: x\r\n" + hdr + b"\r\n\r\n")
    result("bad_header_400_" + name, status_of(out) == 400 and closed, repr(out[:200]))
out, closed = raw(b"GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
result("oversized_headers_431", status_of(out) == 431 and closed, repr(out[:200]))
out, closed = raw(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
result("oversized_request_line_431", status_of(out) == 431 and closed, repr(out[:200]))
out, closed = raw(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
result("oversized_body_413", status_of(out) == 413 and closed, repr(out[:200]))
out, closed = raw(b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  (b"8000\r\n" + b"x" * 0x8000 + b"\r\n") * 3 + b"0\r\n\r\n")
result("oversized_chunked_body_413", status_of(out) == 413 and closed, repr(out[:200]))
out, closed = raw(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
result("conflicting_length_400", status_of(out) == 400 and closed, repr(out[:200]))
# Body within limits but with Expect: 100-continue (curl does this for larger bodies).
s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
s.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
first = s.recv(100)
s.sendall(b"abc")
time.sleep(0.2)
rest = s.recv(1000)
s.close()
result("expect_100_continue", first.startswith(b"HTTP/1.1 100 Continue") and rest.endswith(b"\r\n3\n"),
       repr(first + rest))

# Slowloris: headers trickle in forever; the server must give up after --http.read-timeout (1s).
t0 = time.time()
parts = [b"GET /fast HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(40)]
out, closed = raw(parts, read_timeout=6, pause=0.1)
dt = time.time() - t0
result("slowloris_times_out", closed and dt < 5 and (out == b"" or status_of(out) == 408),
       "closed=%s after %.1fs: %r" % (closed, dt, out[:100]))
# A connection that sends nothing is closed too.
t0 = time.time()
out, closed = raw(b"", read_timeout=6)
result("silent_connection_closed", closed and time.time() - t0 < 5, "closed=%s" % closed)

# Worker pool: slow jobs on both workers must not block the loop.
holders = []
def hold():
    cc = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    cc.request("GET", "/work?n=10&sleep_ms=1500")
    rr = cc.getresponse()
    holders.append((rr.status, rr.read()))
threads = [threading.Thread(target=hold) for _ in range(2)]
for t in threads:
    t.start()
time.sleep(0.3)
c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
t0 = time.time()
c.request("GET", "/fast")
r = c.getresponse()
r.read()
fast_dt = time.time() - t0
c.request("GET", "/inflight")
r = c.getresponse()
inflight = int(r.read())
c.close()
for t in threads:
    t.join()
result("worker_pool_keeps_loop_free", r.status == 200 and fast_dt < 0.5 and inflight >= 3 and
       all(h[0] == 200 and h[1] == b"19.306001\n" for h in holders) and len(holders) == 2,
       "fast took %.2fs, inflight=%d, holders=%r" % (fast_dt, inflight, holders))

# The server survived all of the above.
c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
c.request("GET", "/-/healthy")
r = c.getresponse()
result("alive_after_abuse", r.status == 200 and r.read() == b"OK", str(r.status))
sys.exit(1 if failed else 0)
PYEOF
rc=$?
[ "$rc" -eq 1 ] && LIB_FAILED=$((LIB_FAILED + 1))
[ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && fail python_checks "python exited with $rc"

# --- /metrics: valid text format per promtool, with our per-handler series ---
curl -s -m 5 "$base/metrics" >"$TEST_TMP/metrics.txt"
if promtool check metrics <"$TEST_TMP/metrics.txt" >"$TEST_TMP/promtool.out" 2>&1; then
	pass metrics_promtool_valid
else
	fail metrics_promtool_valid "$(head -5 "$TEST_TMP/promtool.out")"
fi
check metrics_requests_total grep -q '^http_requests_total{code="200",handler="/fast",method="get"} [0-9]' "$TEST_TMP/metrics.txt"
check metrics_404_counted grep -q '^http_requests_total{code="404",handler="other",method="get"} [1-9]' "$TEST_TMP/metrics.txt"
check metrics_duration_histogram grep -q '^http_request_duration_seconds_count{handler="/fast"} [1-9]' "$TEST_TMP/metrics.txt"
check metrics_process grep -q '^process_resident_memory_bytes ' "$TEST_TMP/metrics.txt"
fastn=$(sed -n 's/^http_requests_total{code="200",handler="\/fast",method="get"} //p' "$TEST_TMP/metrics.txt")
check metrics_count_at_least_1000 test "${fastn%.*}" -ge 1000

# --- SIGTERM drains in-flight requests: the slow request completes, new connections are refused ---
curl -s -m 10 -o "$TEST_TMP/slow.out" -w '%{http_code}' "$base/slow?ms=1500" >"$TEST_TMP/slow.code" &
cpid=$!
sleep 0.4
t0=$SECONDS
kill -TERM "$pid"
sleep 0.3
if curl -s -m 2 -o /dev/null "$base/fast"; then
	fail sigterm_stops_accepting "a new request was served after SIGTERM"
else
	pass sigterm_stops_accepting
fi
wait "$cpid"
check sigterm_inflight_completed test "$(cat "$TEST_TMP/slow.code")" = 200 -a "$(cat "$TEST_TMP/slow.out")" = slow
if wait_exit "$pid" 10; then
	check sigterm_exit_0 test "$WAIT_STATUS" -eq 0
	check sigterm_drained_logged grep -q 'HTTP server drained' "$TEST_TMP/srv.log"
else
	fail sigterm_exit "server still running 10s after SIGTERM"
fi

# --- grace period: a request outliving --http-grace-period is cut off and the server still exits ---
port=$(free_port)
start_bg grace "$SRV" --http-address=127.0.0.1:$port --http-grace-period=1s
if wait_url "http://127.0.0.1:$port/-/ready" 10; then
	gpid=${BG_PID_OF[grace]}
	curl -s -m 20 -o /dev/null "http://127.0.0.1:$port/slow?ms=15000" &
	cpid=$!
	# A worker job still running when the grace period ends: its request is orphaned and freed.
	curl -s -m 20 -o /dev/null "http://127.0.0.1:$port/work?n=10&sleep_ms=2500" &
	wpid=$!
	sleep 0.3
	t0=$(date +%s.%N)
	kill -TERM "$gpid"
	if wait_exit "$gpid" 8; then
		dt=$("$PY" -c "import sys; print('%.1f' % ($(date +%s.%N) - $t0))")
		check grace_period_bounds_shutdown "$PY" -c "import sys; sys.exit(0 if 0.8 <= $dt <= 5 else 1)"
		check grace_exit_0 test "$WAIT_STATUS" -eq 0
	else
		fail grace_period_bounds_shutdown "server did not exit within 8s of SIGTERM"
	fi
	wait "$cpid" "$wpid" 2>/dev/null
	check grace_no_sanitizer_reports test -z "$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$TEST_TMP/grace.log" "$TEST_TMP/srv.log")"
else
	fail grace_startup "server did not start"
fi

finish
