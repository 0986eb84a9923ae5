"""httpx transports that draw every request from a bucket::

    client = httpx.Client(transport=ratelimit.httpx.Transport(bucket))
    async with httpx.AsyncClient(transport=ratelimit.httpx.AsyncTransport(bucket)) as c:
        ...

Each request waits for its turn (AsyncTransport awaits it without blocking the event loop),
is sent by the wrapped transport (default httpx.HTTPTransport / AsyncHTTPTransport), and
its response is reported: a 429 pauses the whole pool. With attempts > 1 a 429 is retried
after the pool's pause; the last 429 is returned when every attempt got one.
"""
from __future__ import annotations

from typing import Any, Optional

import httpx

from . import DEFAULT_TIMEOUT, Bucket

__all__ = ["Transport", "AsyncTransport"]


class _Options:
    def __init__(self, bucket: Bucket, cost: int, timeout: Optional[float], attempts: int,
                 max_cooldown: Optional[float]) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.bucket, self.cost, self.wait, self.attempts = bucket, cost, timeout, attempts
        self.max_cooldown = max_cooldown


class Transport(httpx.BaseTransport):
    """Wraps `transport` (default httpx.HTTPTransport()); `cost` units per request, at most
    `timeout` seconds of waiting for a turn (else ratelimit.Timeout)."""

    def __init__(self, bucket: Bucket, transport: Optional[httpx.BaseTransport] = None, *,
                 cost: int = 1, timeout: Optional[float] = DEFAULT_TIMEOUT, attempts: int = 1,
                 max_cooldown: Optional[float] = None) -> None:
        self.opts = _Options(bucket, cost, timeout, attempts, max_cooldown)
        self.transport = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        o = self.opts
        for attempt in range(1, o.attempts + 1):
            decision = o.bucket.acquire(o.cost, o.wait)
            response = self.transport.handle_request(request)
            o.bucket.report(response.status_code, response.headers,
                            max_cooldown=o.max_cooldown)
            response.extensions["ratelimit_decision"] = decision
            if response.status_code != 429 or attempt == o.attempts:
                return response
            response.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.transport.close()


class AsyncTransport(httpx.AsyncBaseTransport):
    """Transport for httpx.AsyncClient: waits with bucket.acquire_async()."""

    def __init__(self, bucket: Bucket, transport: Optional[httpx.AsyncBaseTransport] = None,
                 *, cost: int = 1, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 attempts: int = 1, max_cooldown: Optional[float] = None) -> None:
        self.opts = _Options(bucket, cost, timeout, attempts, max_cooldown)
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        o = self.opts
        for attempt in range(1, o.attempts + 1):
            decision = await o.bucket.acquire_async(o.cost, o.wait)
            response = await self.transport.handle_async_request(request)
            o.bucket.report(response.status_code, response.headers,
                            max_cooldown=o.max_cooldown)
            response.extensions["ratelimit_decision"] = decision
            if response.status_code != 429 or attempt == o.attempts:
                return response
            await response.aclose()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.transport.aclose()
