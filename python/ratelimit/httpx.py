"""httpx transports that draw every request from a bucket::

    client = httpx.Client(transport=ratelimit.httpx.Transport(bucket))
    async with httpx.AsyncClient(transport=ratelimit.httpx.AsyncTransport(bucket)) as c:
        ...

Each request waits for its turn (AsyncTransport awaits it without blocking the event loop),
is sent by the wrapped transport (default httpx.HTTPTransport / AsyncHTTPTransport), and
its response is reported: a 429 pauses the whole pool. With attempts > 1 a 429 is retried
after the pool's pause; the last 429 is returned when every attempt got one.

Between the turn and the request's first byte runs the connection pool (a connect, a TLS
handshake, on a loaded host a preemption). So each request carries a "trace" extension
(httpcore's, chained to one the caller set) that rechecks the admission when httpcore
starts sending its headers (Bucket.recheck, not for a proxy's CONNECT): one gone stale
takes a fresh turn there if one is free at once. It never waits there: the connection is
open and checked out (a server may close it idle meanwhile, and HTTP/2 has taken the
stream's id), and the async transport would block its loop.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

import httpx

from . import DEFAULT_TIMEOUT, Bucket, Decision

__all__ = ["Transport", "AsyncTransport"]


class _Options:
    def __init__(self, bucket: Bucket, cost: int, timeout: Optional[float], attempts: int,
                 max_cooldown: Optional[float]) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.bucket, self.cost, self.wait, self.attempts = bucket, cost, timeout, attempts
        self.max_cooldown = max_cooldown


# httpcore's trace events at which a request's first bytes go out (HTTP/1.1 and HTTP/2).
_SENDING = ("http11.send_request_headers.started", "http2.send_request_headers.started")


class _Turn:
    """One attempt's admission, rechecked once when its headers start to go out."""

    def __init__(self, o: _Options, decision: Decision) -> None:
        self.opts, self.decision, self.checked = o, decision, False

    def recheck(self, name: str, info: Any) -> None:
        if name not in _SENDING or self.checked:
            return
        request = info.get("request") if isinstance(info, dict) else None
        if getattr(request, "method", None) == b"CONNECT":
            return  # the proxy's tunnel, not the request
        self.checked = True
        o = self.opts
        self.decision = o.bucket.recheck(self.decision, o.cost, 0)


def _restore_trace(request: httpx.Request, user: Any) -> None:
    if user is None:
        request.extensions.pop("trace", None)
    else:
        request.extensions["trace"] = user


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
        user: Optional[Callable[[str, Any], None]] = request.extensions.get("trace")
        try:
            for attempt in range(1, o.attempts + 1):
                turn = _Turn(o, o.bucket.acquire(o.cost, o.wait))

                def trace(name: str, info: Any, turn: _Turn = turn) -> None:
                    turn.recheck(name, info)
                    if user is not None:
                        user(name, info)

                request.extensions["trace"] = trace
                response = self.transport.handle_request(request)
                o.bucket.report(response.status_code, response.headers,
                                max_cooldown=o.max_cooldown, decision=turn.decision)
                response.extensions["ratelimit_decision"] = turn.decision
                if response.status_code != 429 or attempt == o.attempts:
                    return response
                response.close()
            raise AssertionError("unreachable")
        finally:
            _restore_trace(request, user)

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
        user: Optional[Callable[[str, Any], Awaitable[None]]] = request.extensions.get("trace")
        try:
            for attempt in range(1, o.attempts + 1):
                turn = _Turn(o, await o.bucket.acquire_async(o.cost, o.wait))

                async def trace(name: str, info: Any, turn: _Turn = turn) -> None:
                    turn.recheck(name, info)
                    if user is not None:
                        await user(name, info)

                request.extensions["trace"] = trace
                response = await self.transport.handle_async_request(request)
                o.bucket.report(response.status_code, response.headers,
                                max_cooldown=o.max_cooldown, decision=turn.decision)
                response.extensions["ratelimit_decision"] = turn.decision
                if response.status_code != 429 or attempt == o.attempts:
                    return response
                await response.aclose()
            raise AssertionError("unreachable")
        finally:
            _restore_trace(request, user)

    async def aclose(self) -> None:
        await self.transport.aclose()
