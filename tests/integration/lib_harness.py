"""Shared helpers for the python integration tests (tests/run skips lib* files).

PASS/FAIL lines are what tests/run counts: `harness = Harness("query_api")`, then `harness.result(name, ok, why)`
or `harness.check(name, fn)` (any exception from fn is a failure carrying its message); `harness.failed` counts
failures. Also: a free 127.0.0.1 port, waiting for a process we started to be ready, and stopping it (TERM, then
KILL after 10 s).
"""
import socket
import subprocess
import sys
import time
import urllib.request


class Harness:
    def __init__(self, name):
        self.name = name
        self.failed = 0

    def result(self, name, ok, why=""):
        if ok:
            print(f"PASS {self.name}:{name}")
        else:
            self.failed += 1
            print(f"FAIL {self.name}:{name}: {why}")
        sys.stdout.flush()

    def check(self, name, fn):
        try:
            fn()
            self.result(name, True)
        except Exception as e:  # noqa: BLE001 - any failure is a test failure with its message
            self.result(name, False, f"{type(e).__name__}: {e}")


_handed_out = set()


def free_port():
    """A port free now and not handed out before by this process: tests that reserve several ports before
    starting anything would otherwise get the same one twice (the kernel may reuse a just-closed port)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in _handed_out:
            _handed_out.add(p)
            return p


def stop(p):
    """TERM, then KILL after 10 s, a process we started (None or an exited one: nothing to do)."""
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_until(ok, proc, what, timeout=30):
    """Poll ok() (exceptions count as not yet) until it is true; raise if proc (None: no process) exits first
    or after timeout seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            if ok():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s")


def wait_ready(port, proc, what, timeout=30):
    """wait_until 127.0.0.1:port/-/ready answers 200."""
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).status == 200, proc, what,
               timeout)
