"""The HTTP client adapters against the mock vendor: each request waits for its turn, each
response (429s included) is reported to the shared bucket."""
import asyncio

import httpx
import pytest
import requests

import ratelimit
import ratelimit.httpx
import ratelimit.requests


def test_requests_adapter_limits_each_request_of_a_session(table, vendor_factory):
    vendor = vendor_factory("foundry")
    b = table.define("v", "5/1h")
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b, timeout=0.05))
    statuses = [s.get(vendor.url + "x").status_code for _ in range(5)]
    assert statuses == [200] * 5
    with pytest.raises(ratelimit.Timeout):
        s.get(vendor.url + "x")
    assert vendor.stop()["requests"] == 5, "the refused request was never sent"


def test_requests_adapter_reports_429s(table, vendor_factory):
    vendor = vendor_factory("di-tier2", scale=2)  # 1 per 2 s, Retry-After on a 429
    b = table.define("v", "100/1s")  # looser than the vendor: it learns from the 429s
    s = requests.Session()
    s.mount(vendor.url, ratelimit.requests.Adapter(b))
    r1, r2 = s.get(vendor.url), s.get(vendor.url)
    assert (r1.status_code, r2.status_code) == (200, 429)
    assert r2.ratelimit_decision.admitted
    info = b.info()
    assert info.counters.reported_429 == 1 and info.feedback.cooldown_ns > 0
    # attempts=2: the 429 is retried after the pool's pause (Retry-After: 2 s).
    s.mount(vendor.url, ratelimit.requests.Adapter(b, attempts=2))
    assert s.get(vendor.url).status_code == 200
    summary = vendor.stop()
    assert summary["throttled"] == b.info().counters.reported_429


def test_httpx_transport(table, vendor_factory):
    vendor = vendor_factory("di-tier2", scale=2)
    b = table.define("v", "100/1s")
    with httpx.Client(transport=ratelimit.httpx.Transport(b)) as c:
        assert [c.get(vendor.url).status_code for _ in range(2)] == [200, 429]
    with httpx.Client(transport=ratelimit.httpx.Transport(b, attempts=3)) as c:
        r = c.get(vendor.url)
        assert r.status_code == 200 and r.extensions["ratelimit_decision"].admitted
    assert vendor.stop()["throttled"] == b.info().counters.reported_429 >= 1


def test_httpx_async_transport(table, vendor_factory):
    vendor = vendor_factory("foundry", scale=20)
    b = table.define("v", "4/300ms margin 0ns")

    async def main():
        t = ratelimit.httpx.AsyncTransport(b)
        async with httpx.AsyncClient(transport=t) as c:
            rs = await asyncio.gather(*(c.get(vendor.url) for _ in range(8)))
        return rs

    rs = asyncio.run(main())
    assert [r.status_code for r in rs] == [200] * 8
    at = sorted(r.extensions["ratelimit_decision"].at_ns for r in rs)
    assert at[4] >= at[0] + 300 * 10**6, "the second four waited for the window"
    assert vendor.stop()["requests"] == 8
