#!/usr/bin/env python3
"""bench/python.py - the Python package, measured against its baselines in the same run:

  cost  bucket.try_acquire() per call (p50, p99 over batches of 100 calls), beside an
        empty method call of a Python object (the interpreter's floor) and python3-limits'
        moving window on Redis (MovingWindowRateLimiter.hit, Redis on a unix socket), the
        same rule for both (100000 per hour, never refused during the run).
  pool  a gunicorn pool (8 sync workers, requests.Session through ratelimit.requests
        .Adapter) against the mock Foundry API (200 per rolling 60 s, time-scaled 20x):
        the vendor's 429s and the share of the budget used over three windows.

usage: PYTHONPATH=BUILD/python bench/python.py [--quick] [--only cost,pool] [--csv DIR]
Start from tools/bench, which builds the package and installs Redis and python3-limits.
"""
import argparse
import csv
import http.client
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import ratelimit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def per_call(fn, batches, size=100):
    """ns per call of fn over `batches` batches of `size` calls: (p50, p99)."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(batches):
        t0 = clock()
        for _ in range(size):
            fn()
        out.append((clock() - t0) / size)
    out.sort()
    return out[len(out) // 2], out[min(len(out) - 1, int(len(out) * 0.99))]


class Empty:
    def nothing(self):
        return True


def start_redis(sock):
    if not shutil.which("redis-server"):
        return None, "redis-server is not installed"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(sock):
            return proc, None
        time.sleep(0.05)
    proc.kill()
    return None, "redis-server did not start within 5 s"


def bench_cost(quick, rows):
    path = "/dev/shm/rl-bench-py-%d" % os.getpid()
    batches = 200 if quick else 5000
    with ratelimit.Table(path) as table:
        bucket = table.define("bench", "100000/1h")
        # Warm up (the handle's first decision caches its rules).
        bucket.try_acquire()
        ours = per_call(bucket.try_acquire, batches)
        floor = per_call(Empty().nothing, batches)
    os.unlink(path)
    rows.append(("python try_acquire", *ours))
    rows.append(("python empty method call", *floor))
    tmp = tempfile.mkdtemp()
    redis, why = start_redis(os.path.join(tmp, "redis.sock"))
    try:
        import limits
        import limits.storage
        import limits.strategies
    except ImportError:
        redis and redis.kill()
        redis, why = None, "python3-limits is not installed"
    if redis:
        try:
            storage = limits.storage.storage_from_string(
                "redis+unix://" + os.path.join(tmp, "redis.sock"))
            limiter = limits.strategies.MovingWindowRateLimiter(storage)
            item = limits.parse("100000/hour")
            limiter.hit(item, "bench")
            theirs = per_call(lambda: limiter.hit(item, "bench"), 20 if quick else 200, 10)
            rows.append(("limits moving window on Redis", *theirs))
        finally:
            redis.terminate()
            redis.wait()
    else:
        rows.append(("limits moving window on Redis: " + why, float("nan"), float("nan")))
    shutil.rmtree(tmp, ignore_errors=True)


def bench_pool(quick, rows):
    scale, limit, period = 20, 200, 3.0
    windows = 1 if quick else 3
    vendor = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "mock_vendor.py"),
                               "--seed", "foundry", "--scale", str(scale), "--max-seconds",
                               "120"], stdout=subprocess.PIPE, text=True)
    ready = select.select([vendor.stdout], [], [], 30)[0]
    line = vendor.stdout.readline() if ready else ""
    if not line.startswith("port "):
        vendor.kill()
        rows.append(("gunicorn pool: the mock vendor did not start", float("nan"), float("nan")))
        return
    url = "http://127.0.0.1:%s/" % line.split()[1]
    tmp = tempfile.mkdtemp()
    path, sock = "/dev/shm/rl-bench-pool-%d" % os.getpid(), os.path.join(tmp, "app.sock")
    table = ratelimit.Table(path)
    table.define("foundry", "200/3s margin 100ms")
    env = dict(os.environ, RATELIMIT_TABLE=path, VENDOR_URL=url)
    app = subprocess.Popen([sys.executable, "-m", "gunicorn", "--chdir",
                            os.path.join(ROOT, "examples", "python"), "-w", "8", "-k", "sync",
                            "-b", "unix:" + sock, "--log-level", "warning", "gunicorn_app:app"],
                           env=env)
    results, lock = [], threading.Lock()
    try:
        for _ in range(300):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(sock)
                break
            except OSError:
                time.sleep(0.1)
        stop_at = time.monotonic() + windows * period + 1.0

        def client():
            while time.monotonic() < stop_at:
                c = http.client.HTTPConnection("localhost", timeout=60)
                c.sock = socket.socket(socket.AF_UNIX)
                c.sock.connect(sock)
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
        vendor.terminate()
        out, _ = vendor.communicate(timeout=30)
        table.close()
        os.unlink(path)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    ok = sorted(at for status, at in results if status == 200)
    used = sum(1 for at in ok if ok and at < ok[0] + windows * period * 1e9)
    share = used / (windows * limit)
    rows.append(("gunicorn pool: vendor 429s", summary["throttled"], summary["throttled"]))
    rows.append(("gunicorn pool: budget share over %d windows" % windows, share, share))
    print("gunicorn pool: %d requests, %d answered 200, %d vendor 429s, most in a server "
          "window %d/%d, %.3f of the budget over %d windows"
          % (len(results), len(ok), summary["throttled"], summary["most_in_window"][0], limit,
             share, windows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="cost,pool")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.only.split(","):
        {"cost": bench_cost, "pool": bench_pool}[name](args.quick, rows)
    print("\n| python | p50 | p99 |\n|---|---|---|")
    for name, p50, p99 in rows:
        if "pool" in name:
            print("| %s | %s | |" % (name, round(p50, 3)))
        else:
            print("| %s | %.0f ns | %.0f ns |" % (name, p50, p99))
    cost = {name: p50 for name, p50, _ in rows}
    if "python try_acquire" in cost:
        print("\ntarget: try_acquire p50 <= 1 us: %s (%.0f ns)"
              % ("met" if cost["python try_acquire"] <= 1000 else "NOT met",
                 cost["python try_acquire"]))
    if args.csv:
        os.makedirs(args.csv, exist_ok=True)
        with open(os.path.join(args.csv, "python.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["measure", "p50", "p99"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
