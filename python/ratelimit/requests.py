"""A requests transport adapter that draws every request from a bucket::

    session = requests.Session()
    session.mount("https://api.vendor.example/", ratelimit.requests.Adapter(bucket))

Each request (each one, on a keep-alive connection too) waits for its turn, is sent, and
its response is reported: a 429 pauses the whole pool, X-RateLimit-* headers tighten it.
With attempts > 1 a 429 is retried after the pool's pause (rl_call's loop); the last 429 is
returned when every attempt got one.
"""
from __future__ import annotations

from typing import Any, Optional

import requests.adapters

from . import DEFAULT_TIMEOUT, Bucket, Limited


class Adapter(requests.adapters.HTTPAdapter):
    """HTTPAdapter drawing `cost` units from `bucket` per request (waiting at most
    `timeout` seconds for a turn, else ratelimit.Timeout). Other keyword arguments go to
    HTTPAdapter (pool_connections, pool_maxsize, max_retries...). Each response carries
    the admission as ``response.ratelimit_decision`` when attempts is 1."""

    def __init__(self, bucket: Bucket, *, cost: int = 1,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, attempts: int = 1,
                 max_cooldown: Optional[float] = None, **kw: Any) -> None:
        self.bucket, self.cost, self.wait, self.attempts = bucket, cost, timeout, attempts
        self.max_cooldown = max_cooldown
        super().__init__(**kw)

    def send(self, request: Any, **kw: Any) -> Any:
        if self.attempts == 1:
            decision = self.bucket.acquire(self.cost, self.wait)
            response = super().send(request, **kw)
            self.bucket.report(response, max_cooldown=self.max_cooldown)
            response.ratelimit_decision = decision
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
