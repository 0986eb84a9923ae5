"""A requests transport adapter that draws every request from a bucket::

    session = requests.Session()
    session.mount("https://api.vendor.example/", ratelimit.requests.Adapter(bucket))

Each request (each one, on a keep-alive connection too) waits for its turn, is sent, and
its response is reported: a 429 pauses the whole pool, X-RateLimit-* headers tighten it.
With attempts > 1 a 429 is retried after the pool's pause (rl_call's loop); the last 429 is
returned when every attempt got one.

Between the turn and the moment the request's bytes go to the socket runs all of
urllib3's send path (the pool, a connect or TLS handshake, on a loaded host a preemption).
So the adapter's connections recheck the admission on their first send of each request
(Bucket.recheck), once connected (a proxy's CONNECT is not the request): one that has gone
stale meanwhile takes a fresh turn there. A connection the server closed while the fresh
turn was awaited is opened again before the request goes out.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.util.connection

from . import DEFAULT_TIMEOUT, Bucket, Limited

# The recheck the adapter's current request owes, for its connection's first send. The
# adapter's send and the connection's run on the same thread (urllib3 sends synchronously).
_pending = threading.local()


class _RecheckOnSend:
    """A connection that runs the pending recheck before its first send of a request,
    once connected (http.client connects a new connection inside its first send)."""

    sock: Any
    auto_open: int
    _rl_connecting = False

    def connect(self) -> None:
        self._rl_connecting = True  # a proxy tunnel's CONNECT is sent from in here
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._rl_connecting = False

    def send(self, data: Any) -> None:
        check: Optional[Callable[[], bool]] = getattr(_pending, "check", None)
        if check is not None and not self._rl_connecting:
            _pending.check = None
            if self.sock is None and self.auto_open:
                self.connect()
            if check() and urllib3.util.connection.is_connection_dropped(self):
                # The fresh turn was awaited on an idle connection the server has closed
                # since: nothing of the request was sent, so open it again.
                self.sock.close()
                self.sock = None
                self.connect()
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_RecheckOnSend, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_RecheckOnSend, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class Adapter(requests.adapters.HTTPAdapter):
    """HTTPAdapter drawing `cost` units from `bucket` per request (waiting at most
    `timeout` seconds for a turn, else ratelimit.Timeout). Other keyword arguments go to
    HTTPAdapter (pool_connections, pool_maxsize, max_retries...). Each response carries
    the admission as ``response.ratelimit_decision`` when attempts is 1: the fresh turn if
    the recheck at the send took one. urllib3 retries a response inside one send, unseen
    by the bucket: so `max_retries` may not retry 429s (status_forcelist: ValueError, use
    `attempts`), and its Retry-After retries of 413/429/503 are turned off."""

    def __init__(self, bucket: Bucket, *, cost: int = 1,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, attempts: int = 1,
                 max_cooldown: Optional[float] = None, **kw: Any) -> None:
        self.bucket, self.cost, self.wait, self.attempts = bucket, cost, timeout, attempts
        self.max_cooldown = max_cooldown
        super().__init__(**kw)
        retries = self.max_retries
        if 429 in (retries.status_forcelist or ()):
            raise ValueError("max_retries must not retry 429 responses (status_forcelist): "
                             "urllib3 would send them again inside one request, uncharged "
                             "and unreported; use attempts=N")
        if retries.respect_retry_after_header:
            self.max_retries = retries.new(respect_retry_after_header=False)

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kw: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kw)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are urllib3's own
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def send(self, request: Any, **kw: Any) -> Any:
        if self.attempts == 1:
            deadline = None if self.wait is None else time.monotonic() + self.wait
            decision = [self.bucket.acquire(self.cost, self.wait)]

            def check() -> bool:  # True: a fresh turn replaced the stale one
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                stale = decision[0]
                decision[0] = self.bucket.recheck(stale, self.cost, left)
                return decision[0] is not stale

            _pending.check = check
            try:
                response = super().send(request, **kw)
            finally:
                _pending.check = None
            self.bucket.report(response, max_cooldown=self.max_cooldown, decision=decision[0])
            response.ratelimit_decision = decision[0]
            return response
        last = []

        def attempt() -> Any:
            if last:
                last.pop().close()  # a 429 being retried: free its connection
            response = super(Adapter, self).send(request, **kw)
            last.append(response)
            return response

        try:
            return self.bucket.call(attempt, cost=self.cost, timeout=self.wait,
                                    attempts=self.attempts, max_cooldown=self.max_cooldown)
        except Limited as exc:
            return exc.response
