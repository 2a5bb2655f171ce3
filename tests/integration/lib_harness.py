"""Shared helpers for the python integration tests (tests/run skips lib* files).

PASS/FAIL lines are what tests/run counts: `harness = Harness("query_api")`, then `harness.result(name, ok, why)`
or `harness.check(name, fn)` (any exception from fn is a failure carrying its message); `harness.failed` counts
failures. Also: a free 127.0.0.1 port, and stopping a process we started (TERM, then KILL after 10 s).
"""
import socket
import subprocess
import sys


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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
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
