"""A celery-style prefork worker pool (multiprocessing) whose tasks call a vendor API
through one bucket: the table is opened once, before the fork, and every child draws from
the same shared budget.

    python3 worker_pool.py --vendor URL [--table PATH] [--bucket NAME] [--rules TEXT]
                           [--workers N] [--tasks N]

Prints one JSON line: the answers counted by status, and each task's (status, admission
instant in CLOCK_MONOTONIC ns).
"""
import argparse
import collections
import json
import multiprocessing

import requests

import ratelimit
import ratelimit.requests

_session = None


def _init(bucket, vendor):
    """Each child: its own session (connections are not shared across fork)."""
    global _session
    _session = requests.Session()
    _session.mount(vendor, ratelimit.requests.Adapter(bucket, timeout=25.0))


def task(job):
    """One job: a vendor call made within the budget (its answer is reported)."""
    vendor, i = job
    r = _session.get(vendor + "v1/jobs/%d" % i, timeout=10)
    return r.status_code, r.ratelimit_decision.at_ns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vendor", required=True)
    ap.add_argument("--table", default=None)
    ap.add_argument("--bucket", default="foundry")
    ap.add_argument("--rules", default="200/60s")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args()
    table = ratelimit.Table(args.table)
    bucket = table.define(args.bucket, args.rules)
    # fork, as celery's prefork pool: the children inherit the table and the bucket.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init, initargs=(bucket, args.vendor)) as pool:
        results = pool.map(task, [(args.vendor, i) for i in range(args.tasks)], chunksize=1)
    counts = collections.Counter(str(s) for s, _ in results)
    print(json.dumps({"answers": counts, "results": results}))


if __name__ == "__main__":
    main()
