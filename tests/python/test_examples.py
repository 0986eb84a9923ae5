"""The examples of examples/python, run against the mock vendor: a gunicorn app (sync
workers), a prefork worker pool and asyncio clients sharing one bucket. Asserted exactly,
from the admission instants the clients logged: no window of the rule (with its margin)
ever held more than N admissions, and every 429 reached the table. The vendor's 429 count
and the share of the budget used depend on the machine's load: printed, not asserted."""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import ratelimit
from conftest import EXAMPLES, budget_share, child_env, most_in_window

SCALE = 20  # the mock Foundry: 200 per rolling 3 s
LIMIT, PERIOD_NS, MARGIN_NS = 200, 3 * 10**9, 100 * 10**6
# The margin covers the lag from admission to arrival at the vendor, which time-scaling
# does not shrink: 100 ms of a 3 s window (a loaded machine delays some requests).
RULES = "200/3s margin 100ms"


def check_admissions(name, results, vendor_summary, bucket):
    ok = [at for status, at in results if status == 200]
    throttled = sum(1 for status, _ in results if status == 429)
    assert all(status in (200, 429) for status, _ in results), results[:5]
    assert most_in_window([at for _, at in results], PERIOD_NS + MARGIN_NS) <= LIMIT
    assert bucket.info().counters.reported_429 == throttled == vendor_summary["throttled"]
    share = budget_share(ok, LIMIT, PERIOD_NS, 2)
    print(f"{name}: {len(results)} requests, {len(ok)} answered 200, vendor 429s: "
          f"{vendor_summary['throttled']}, most in a server window: "
          f"{vendor_summary['most_in_window'][0]}/{LIMIT}, budget share over 2 windows: "
          f"{share:.3f}")
    return share


def test_quickstart(table_path, vendor_factory):
    vendor = vendor_factory("foundry", scale=SCALE)
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "quickstart.py"), vendor.url],
                         env=child_env(RATELIMIT_TABLE=table_path), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["200 remaining 199", "200 remaining 198", "200 remaining 197"]
    assert lines[3] == "admitted at once" and lines[4].startswith("Counters(admitted=5")
    assert vendor.stop()["ok"] == 3


def test_worker_pool(table_path, vendor_factory):
    vendor = vendor_factory("foundry", scale=SCALE)
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "worker_pool.py"), "--vendor", vendor.url,
         "--table", table_path, "--rules", RULES, "--workers", "8", "--tasks", "500"],
        env=child_env(), capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["results"]
    assert len(results) == 500
    with ratelimit.Table(table_path) as t:
        check_admissions("worker pool", results, vendor.stop(), t.bucket("foundry"))


def test_async_clients(table_path, vendor_factory):
    for client in ("httpx", "aiohttp"):
        vendor = vendor_factory("foundry", scale=SCALE)
        out = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, "async_client.py"), "--vendor", vendor.url,
             "--client", client, "--table", table_path, "--bucket", client, "--rules", RULES,
             "--requests", "420", "--concurrency", "40"],
            env=child_env(), capture_output=True, text=True, timeout=100)
        assert out.returncode == 0, out.stderr
        results = json.loads(out.stdout)["results"]
        assert len(results) == 420
        with ratelimit.Table(table_path) as t:
            check_admissions("async " + client, results, vendor.stop(), t.bucket(client))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.path)


def test_gunicorn_pool_through_the_requests_adapter(table_path, vendor_factory, tmp_path):
    vendor = vendor_factory("foundry", scale=SCALE)
    table = ratelimit.Table(table_path)
    bucket = table.define("foundry", RULES)
    sock = str(tmp_path / "app.sock")
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", EXAMPLES, "-w", "8", "-k", "sync",
         "-b", "unix:" + sock, "--timeout", "60", "--log-level", "warning",
         "gunicorn_app:app"],
        env=child_env(RATELIMIT_TABLE=table_path, VENDOR_URL=vendor.url))
    try:
        for _ in range(300):  # ready when the socket accepts (bounded: 30 s)
            if app.poll() is not None:
                raise AssertionError("gunicorn exited")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(sock)
                break
            except OSError:
                time.sleep(0.1)
        results, lock = [], threading.Lock()
        stop_at = time.monotonic() + 2 * PERIOD_NS / 1e9 + 1.0  # two windows and a bit

        def client():
            while time.monotonic() < stop_at:
                c = UnixHTTPConnection(sock)
                c.request("GET", "/")
                body = json.loads(c.getresponse().read())
                c.close()
                with lock:
                    results.append((body["status"], body.get("at_ns", 0)))

        threads = [threading.Thread(target=client) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        app.terminate()
        app.wait(30)
    assert results and not any(t.is_alive() for t in threads)
    assert all(s != "timeout" for s, _ in results)
    check_admissions("gunicorn pool", results, vendor.stop(), bucket)
    table.close()
