"""An asyncio client making many concurrent vendor calls through one bucket, with httpx
(ratelimit.httpx.AsyncTransport) or aiohttp (``async with bucket.limit()`` and
bucket.report()). Waiting for a turn never blocks the event loop.

    python3 async_client.py --vendor URL [--client httpx|aiohttp] [--table PATH]
                            [--bucket NAME] [--rules TEXT] [--requests N] [--concurrency N]

Prints one JSON line: the answers counted by status, and each request's (status,
admission instant in CLOCK_MONOTONIC ns).
"""
import argparse
import asyncio
import collections
import json

import ratelimit
import ratelimit.httpx


async def with_httpx(bucket, url, n, concurrency):
    import httpx
    sem = asyncio.Semaphore(concurrency)
    transport = ratelimit.httpx.AsyncTransport(bucket, timeout=25.0)
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        async def one(i):
            async with sem:
                r = await client.get(url + "v1/items/%d" % i)
                return r.status_code, r.extensions["ratelimit_decision"].at_ns
        return await asyncio.gather(*(one(i) for i in range(n)))


async def with_aiohttp(bucket, url, n, concurrency):
    import aiohttp
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(i):
            async with sem:
                async with bucket.limit(timeout=25.0) as decision:
                    async with session.get(url + "v1/items/%d" % i) as r:
                        bucket.report(r, decision=decision)  # r.status, r.headers
                        return r.status, decision.at_ns
        return await asyncio.gather(*(one(i) for i in range(n)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vendor", required=True)
    ap.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    ap.add_argument("--table", default=None)
    ap.add_argument("--bucket", default="foundry")
    ap.add_argument("--rules", default="200/60s")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    with ratelimit.Table(args.table) as table:
        bucket = table.define(args.bucket, args.rules)
        run = with_httpx if args.client == "httpx" else with_aiohttp
        results = asyncio.run(run(bucket, args.vendor, args.requests, args.concurrency))
    counts = collections.Counter(str(s) for s, _ in results)
    print(json.dumps({"answers": counts, "results": results}))


if __name__ == "__main__":
    main()
