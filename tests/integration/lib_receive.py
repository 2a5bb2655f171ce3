"""Shared helpers for the `strata receive` integration tests (tests/run skips lib* files).

Remote-write bodies are built here without third-party modules: the protobuf by hand (field tags and
varints) and the snappy block format with literal elements only (valid snappy that any decoder
accepts, just not compressed). Receiver wraps one `strata receive` process on free 127.0.0.1 ports.
"""
import os
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.request

from lib_harness import free_port, stop, wait_ready

BIN = os.environ.get("STRATA_BIN", "build/strata")
BUILD = os.path.dirname(BIN)
LOADGEN = os.path.join(BUILD, "bench", "receive_loadgen")
STORECLI = os.path.join(os.environ.get("STRATA_TEST_BIN", os.path.join(BUILD, "tests")), "storeapi_client")


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def label(name, value):
    return field(1, name.encode() if isinstance(name, str) else name) + \
        field(2, value.encode() if isinstance(value, str) else value)


def sample(t, v):
    return b"\x09" + struct.pack("<d", v) + b"\x10" + varint(t)


def timeseries(labels, samples):
    """labels: [(name, value)] as sent (not sorted here); samples: [(t_ms, value)]."""
    body = b"".join(field(1, label(n, v)) for n, v in labels)
    body += b"".join(field(2, sample(t, v)) for t, v in samples)
    return body


def write_request(series, metadata=()):
    """series: [(labels, samples)]; metadata: [(type, family, help, unit)]."""
    body = b"".join(field(1, timeseries(ls, ss)) for ls, ss in series)
    for typ, fam, hlp, unit in metadata:
        md = varint(1 << 3) + varint(typ) + field(2, fam.encode()) + field(4, hlp.encode()) + field(5, unit.encode())
        body += field(3, md)
    return body


def snappy_block(data):
    """Snappy block format, literals only."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            out.append(61 << 2)
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


class Receiver:
    """One `strata receive` on free ports; args are extra flags."""

    def __init__(self, tmp, tsdb=None, args=(), name="receive"):
        self.tmp = tmp
        self.tsdb = tsdb or os.path.join(tmp, "tsdb")
        self.args = list(args)
        self.name = name
        self.http = free_port()
        self.grpc = free_port()
        self.rw = free_port()
        self.proc = None
        self.log = os.path.join(tmp, f"{name}.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.rw}/api/v1/receive"

    def start(self, wait=True):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [BIN, "receive", f"--tsdb.path={self.tsdb}", f"--http-address=127.0.0.1:{self.http}",
             f"--grpc-address=127.0.0.1:{self.grpc}", f"--remote-write.address=127.0.0.1:{self.rw}",
             "--http-grace-period=1s", "--grpc-grace-period=1s"] + self.args,
            stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            wait_ready(self.http, self.proc, self.name, timeout=60)
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def stop(self):
        """SIGTERM and wait (the head is cut and uploaded on the way out)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode

    def post(self, body, headers=None, raw=False):
        """(status, text) of a POST to /api/v1/receive; body snappy-encoded unless raw."""
        h = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
             "X-Prometheus-Remote-Write-Version": "0.1.0"}
        h.update(headers or {})
        req = urllib.request.Request(self.url, data=body if raw else snappy_block(body), headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def metrics(self):
        return urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10).read().decode()

    def series(self, selector, mint=0, maxt=9999999999999):
        """storeapi_client series output lines for selector."""
        out = subprocess.run([STORECLI, "--timeout", "60000", f"127.0.0.1:{self.grpc}", "series", selector, str(mint),
                              str(maxt)], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"storeapi_client: {out.stderr}")
        return [line for line in out.stdout.splitlines() if line and not line.startswith("warning")]

    def log_text(self):
        with open(self.log) as f:
            return f.read()


def loadgen(*args, timeout=600):
    out = subprocess.run([LOADGEN] + list(args), capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def query_proc(tmp, grpc_ports, name="query"):
    """A `strata query` over the given gRPC ports; returns (proc, http_port)."""
    port = free_port()
    log = open(os.path.join(tmp, f"{name}.log"), "a")
    args = [BIN, "query", f"--http-address=127.0.0.1:{port}", f"--grpc-address=127.0.0.1:{free_port()}"]
    args += [f"--endpoint=127.0.0.1:{p}" for p in grpc_ports]
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p, name)
    return p, port
