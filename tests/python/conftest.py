"""Fixtures of the Python tests: a table per test, the mock vendor, the examples' folder.

meson runs these with the interpreter the package was built for, PYTHONPATH naming the
build tree's package (build/python) and RL_SOURCE_ROOT the source tree.
"""
import json
import os
import select
import subprocess
import sys
import time

import pytest

SOURCE_ROOT = os.environ.get("RL_SOURCE_ROOT",
                             os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(SOURCE_ROOT, "examples", "python")
MOCK_VENDOR = os.path.join(SOURCE_ROOT, "tests", "mock_vendor.py")


def child_env(**extra):
    """The environment of a child Python: the same package path."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def table_path(request):
    path = "/dev/shm/rl-py-%d-%s" % (os.getpid(), request.node.name[:40].replace("/", "_"))
    yield path
    if os.path.exists(path):
        os.unlink(path)


@pytest.fixture
def table(table_path):
    import ratelimit
    t = ratelimit.Table(table_path)
    yield t
    t.close()


class Vendor:
    """tests/mock_vendor.py, started on loopback; stopped by pid."""

    def __init__(self, seed, scale, max_seconds):
        self.proc = subprocess.Popen(
            [sys.executable, MOCK_VENDOR, "--seed", seed, "--scale", str(scale),
             "--max-seconds", str(max_seconds)], stdout=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.monotonic() + 30  # the "port N" line is the ready signal
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self.stop()
                raise RuntimeError("the mock vendor did not listen within 30 s")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the mock vendor exited before it listened")
            if line.startswith("port "):
                self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d/" % self.port
        self.summary = None

    def stop(self):
        """Stop it; returns its summary (requests, ok, throttled, most_in_window...)."""
        if self.summary is None and self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        lines = [l for l in (out or "").splitlines() if l.startswith("{")]
        if self.summary is None and lines:
            self.summary = json.loads(lines[-1])
        return self.summary


@pytest.fixture
def vendor_factory():
    started = []

    def start(seed="foundry", scale=20.0, max_seconds=120):
        v = Vendor(seed, scale, max_seconds)
        started.append(v)
        return v

    yield start
    for v in started:
        if v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()


def most_in_window(instants, window_ns):
    """The most instants in any half-open window [a, a + window_ns)."""
    xs = sorted(instants)
    most, j = 0, 0
    for i, x in enumerate(xs):
        while xs[j] <= x - window_ns:
            j += 1
        most = max(most, i - j + 1)
    return most


def budget_share(admitted_ok, limit, period_ns, windows):
    """Of the `windows` full windows from the first admission, the share of the budget
    (windows * limit) the requests answered 200 used."""
    if not admitted_ok:
        return 0.0
    first = min(admitted_ok)
    used = sum(1 for t in admitted_ok if t < first + windows * period_ns)
    return used / (windows * limit)
