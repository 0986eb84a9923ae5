"""ratelimit: share one API rate-limit budget among every process of a host.

A table is a file (default /dev/shm/ratelimit) every process maps; it holds named buckets
with their rules ("200/60s"). Every decision is a lock-free atomic update of that shared
memory, so gunicorn workers, celery children and asyncio tasks of any number of processes
draw from one budget, first come first served::

    import ratelimit

    table = ratelimit.Table.from_config()          # /etc/ratelimit.conf, or $RATELIMIT_CONFIG
    bucket = table.bucket("foundry")
    bucket.acquire()                               # sleeps (GIL released) until our turn
    with bucket.limit():                           # the same, as a context manager
        ...
    bucket.report(response)                        # a 429 pauses the whole pool

HTTP clients: ratelimit.requests.Adapter and ratelimit.httpx.Transport / AsyncTransport
acquire before each request and report each response.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
from contextlib import ContextDecorator
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple, TypeVar, Union

from . import _core
from ._types import (ERRORS, BadTable, BucketInfo, Corrupt, CostTooHigh, Counters, Cycle,
                     Decision, Error, Exists, Feedback, FeedbackState, Full, InvalidArgument,
                     InvalidName, Limited, NotFound, OutOfMemory, ParseError, PermissionDenied,
                     RuleState, Stale, SystemCallError, Timeout, VersionMismatch)

__all__ = [
    "Table", "Bucket", "Decision", "Feedback", "BucketInfo", "RuleState", "Counters",
    "FeedbackState", "Error", "Limited", "Timeout", "InvalidArgument", "OutOfMemory",
    "NotFound", "Exists", "Full", "SystemCallError", "BadTable", "VersionMismatch", "Stale",
    "PermissionDenied", "InvalidName", "ParseError", "CostTooHigh", "Cycle", "Corrupt",
    "response_fields", "now_ns", "check_rules", "library_version", "DEFAULT_TIMEOUT",
]

now_ns = _core.now_ns
check_rules = _core.check_rules
library_version = _core.version
guard_install = _core.guard_install

DEFAULT_TIMEOUT = 30.0  # seconds a blocking acquire waits for its turn by default

IGNORED_RETRY_AFTER, IGNORED_REMAINING, IGNORED_RESET, IGNORED_RATELIMIT, IGNORED_LIMIT = (
    1, 2, 4, 8, 16)


def _register_errors() -> None:
    by_code = {}
    for name, code, _message in _core._error_table():
        cls = ERRORS[name]
        cls.code, cls.name = code, name
        by_code[code] = cls
    _core._set_errors(by_code)


_register_errors()

_F = TypeVar("_F", bound=Callable[..., Any])
Headers = Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None]

# Lower-case header name -> position in the fields tuple after the status.
_HEADERS = {"retry-after": 0, "x-ratelimit-limit": 1, "x-ratelimit-remaining": 2,
            "x-ratelimit-reset": 3, "ratelimit": 4, "ratelimit-policy": 5}


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


def response_fields(status: Any, headers: Headers = None) -> Tuple[Any, ...]:
    """(status, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset,
    RateLimit, RateLimit-Policy) from a status and any mapping (or sequence of pairs) of
    headers, names matched case-insensitively; the first of repeated headers counts.
    `status` may also be a response object (``.status_code`` or ``.status`` and
    ``.headers``: requests, httpx, aiohttp, urllib3, http.client)."""
    if not isinstance(status, int):
        response = status
        status = getattr(response, "status_code", None)
        if status is None:
            status = getattr(response, "status")
        if headers is None:
            headers = getattr(response, "headers", None)
    values: list = [None] * 6
    if headers is not None:
        items = headers.items() if hasattr(headers, "items") else headers
        for name, value in items:
            i = _HEADERS.get(_text(name).lower())
            if i is not None and values[i] is None:
                values[i] = _text(value).strip()
    return (int(status), *values)


def _ns(seconds: Optional[float]) -> int:
    return 0 if seconds is None else int(seconds * 1e9)


def _timeout_error(bucket: "Bucket", cost: int, wait_ns: int) -> Timeout:
    wait = "never before a reset" if wait_ns >= 2**64 - 1 else f"in {wait_ns / 1e9:.3f} s"
    return Timeout(Timeout.code, "timed out: the request would not be admitted before the "
                   "deadline", f"bucket '{bucket.name}': cost {cost} would be admitted {wait}")


class Bucket(_core.Bucket):
    """A bucket handle (from Table.bucket, Table.get or Table.define). Every method may be
    called from any thread and, after fork(), from any child process."""

    @property
    def name(self) -> str:
        """The bucket's name."""
        return self._name()

    def __repr__(self) -> str:
        return f"<ratelimit.Bucket {self._name()!r}>"

    def get(self, name: str) -> "Bucket":
        """For a template handle ("tenant/*"): the bucket `name` made from it on first use,
        by whichever process asks first. `name` is the full name ("tenant/acme") or what
        follows the template's prefix ("acme")."""
        prefix = self._name()[:-1]
        if not prefix.endswith("/") or not self._name().endswith("*"):
            raise InvalidArgument(InvalidArgument.code, "invalid argument",
                                  f"'{self._name()}' is not a template")
        full = name if name.startswith(prefix) else prefix + name
        return Bucket(self._table, full, True)

    def decide(self, cost: int = 1) -> Decision:
        """Like try_acquire, with the decision: admitted, the instant, or how long to wait."""
        return Decision(*self._decide(cost))

    def acquire(self, cost: int = 1, timeout: Optional[float] = DEFAULT_TIMEOUT) -> Decision:
        """Take `cost` units, waiting for the earliest turn (first come, first served,
        across processes) at most `timeout` seconds (None: for ever). The GIL is released
        while it sleeps. Raises Timeout, reserving nothing, when the turn is further."""
        d = Decision(*self._acquire(cost, timeout))
        if not d.admitted:
            raise _timeout_error(self, cost, d.wait_ns)
        return d

    def recheck(self, decision: Decision, cost: int = 1,
                timeout: Optional[float] = DEFAULT_TIMEOUT) -> Decision:
        """Call right before an admitted request leaves, when code ran since `decision`
        (a connection pool, a TLS handshake, a preempted process): if more than half the
        bucket's margin in effect has passed since it, the vendor might count the request
        in a window the rules already filled, so take a fresh turn (waiting at most
        `timeout` seconds) and return it; the stale one stays counted, unused. Otherwise,
        or with no fresh turn in time, return `decision`: it stands. Never raises Timeout:
        the request was admitted (rl_acquire_recheck)."""
        if not decision.admitted:
            raise InvalidArgument(InvalidArgument.code, "invalid argument",
                                  f"bucket '{self.name}': recheck needs an admission")
        fresh = self._recheck(cost, timeout, decision.at_ns, decision.dry_run_rejected)
        return decision if fresh is None else Decision(*fresh)

    async def acquire_async(self, cost: int = 1,
                            timeout: Optional[float] = DEFAULT_TIMEOUT) -> Decision:
        """acquire() for asyncio: reserve the turn at once (rl_reserve: first come, first
        served across processes, never blocking the event loop), then await it. A task
        cancelled while it waits loses its turn; the units stay counted (the pool admits
        less, never more). A turn a 429 voided meanwhile is reserved again after the
        cool-down, within the same deadline. A wake-up late past half the margin (a busy
        event loop) takes a fresh turn if one is free at once (recheck with timeout 0)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            d = Decision(*self._reserve(cost, left))
            if not d.admitted:
                raise _timeout_error(self, cost, d.wait_ns)
            delay = d.at_ns - _core.now_ns()
            if delay <= 0:
                return d
            await asyncio.sleep(delay / 1e9)
            while _core.now_ns() < d.at_ns:  # the loop's clock may round the sleep down
                await asyncio.sleep(0.001)
            resume = self._reserve_check(cost, d.at_ns)  # did a 429 void the turn?
            if not resume:  # woken late (a busy loop): a fresh turn only if one is free now
                return self.recheck(d, cost, 0)
            if deadline is not None and loop.time() + (resume - _core.now_ns()) / 1e9 >= deadline:
                raise Timeout(Timeout.code, "timed out: the request would not be admitted "
                              "before the deadline", f"bucket '{self.name}': cooling down "
                              "after a 429")
            await asyncio.sleep(max(0, resume - _core.now_ns()) / 1e9)

    def limit(self, cost: int = 1, timeout: Optional[float] = DEFAULT_TIMEOUT) -> "_Limit":
        """Acquire on entry, as a context manager (``with``, ``async with``) or a decorator
        (of plain and of async functions)."""
        return _Limit(self, cost, timeout)

    def report(self, status: Any, headers: Headers = None, *,
               max_cooldown: Optional[float] = None,
               decision: Optional[Decision] = None) -> Feedback:
        """Tell the pool what the vendor answered: a status and its headers (any mapping or
        pairs; Retry-After, X-RateLimit-*, RateLimit and RateLimit-Policy are looked up
        case-insensitively), or a response object. A 429 pauses every process of the pool
        (Retry-After, else the reset, else a shared exponential backoff); a lower remaining
        budget than ours tightens the bucket. `max_cooldown`: the longest pause to accept,
        in seconds (default 1 hour). `decision`: the Decision that admitted this request;
        with it the pool measures the delay from decision to response, and a 429 to a
        request the rules admitted widens the bucket's margin (README "Server feedback")."""
        decided = 0
        if decision is not None and decision.admitted and not decision.dry_run_rejected:
            decided = decision.at_ns
        return Feedback(*self._report(response_fields(status, headers), _ns(max_cooldown),
                                      decided))

    def call(self, fn: Callable[[], Any], *, cost: int = 1,
             timeout: Optional[float] = DEFAULT_TIMEOUT, attempts: int = 3,
             max_cooldown: Optional[float] = None) -> Any:
        """rl_call's retry loop: acquire, call fn() (which sends the request and returns the
        response, or a (status, headers) pair), report it, and on a 429 wait as the pool was
        told and try again, at most `attempts` times in all. Returns fn's result for the
        first non-429 answer. Raises Limited (with .response, the last 429) when every
        attempt got a 429, Timeout when no turn came in time, or what fn raised."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")

        def attempt() -> Tuple[Any, Tuple[Any, ...]]:
            result = fn()
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
                return result, response_fields(result[0], result[1])
            return result, response_fields(result)

        rc, result = self._call(attempt, cost, timeout, attempts, _ns(max_cooldown))
        if rc == Limited.code:
            exc = Limited(rc, "rate limited: the budget does not allow this request now",
                          f"bucket '{self.name}': still 429 after {attempts} attempts")
            exc.response = result
            raise exc
        if rc == Timeout.code:
            raise Timeout(rc, "timed out: the request would not be admitted before the "
                          "deadline", f"bucket '{self.name}': no turn within {timeout} s")
        return result

    def info(self) -> BucketInfo:
        """The bucket's rules, usage, counters and feedback state."""
        return BucketInfo._from(self._info())


class _Limit(ContextDecorator):
    """bucket.limit(): acquire on entry; nothing to release (the units are spent)."""

    def __init__(self, bucket: Bucket, cost: int, timeout: Optional[float]) -> None:
        self.bucket, self.cost, self.timeout = bucket, cost, timeout
        self.decision: Optional[Decision] = None

    def __enter__(self) -> Decision:
        self.decision = self.bucket.acquire(self.cost, self.timeout)
        return self.decision

    def __exit__(self, *exc: Any) -> None:
        return None

    async def __aenter__(self) -> Decision:
        self.decision = await self.bucket.acquire_async(self.cost, self.timeout)
        return self.decision

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def __call__(self, func: _F) -> _F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def wrapper(*args: Any, **kw: Any) -> Any:
                await self.bucket.acquire_async(self.cost, self.timeout)
                return await func(*args, **kw)
            return wrapper  # type: ignore[return-value]
        return super().__call__(func)


class Table(_core.Table):
    """An attached table. ``Table(path)`` opens (and by default creates) the table file;
    ``Table.from_config()`` opens the table a config file names and applies its buckets.
    Close it with close() or a ``with`` block; its buckets are unusable afterwards."""

    def __init__(self, path: Optional[str] = None, *, create: bool = True,
                 readonly: bool = False, capacity: int = 1024, mode: int = 0o600) -> None:
        super().__init__(path, create, readonly, capacity, mode)
        self.notes: list = []

    @classmethod
    def from_config(cls, config: Optional[str] = None, *, readonly: bool = False,
                    apply: bool = True) -> "Table":
        """Open the table of a config file (`config`, else $RATELIMIT_CONFIG, else
        /etc/ratelimit.conf), creating it as the file says. With `apply`, also create or
        update its buckets and templates (rl_config_apply; the actions are in .notes).
        Raises ParseError listing every problem of the file."""
        table, notes = _core._open_config(cls, config, readonly, apply and not readonly)
        table.notes = notes
        return table

    @property
    def path(self) -> str:
        """The table file's path."""
        return _core.Table.path(self)

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def bucket(self, name: str) -> Bucket:
        """The existing bucket (or template pattern) `name`; raises NotFound."""
        return Bucket(self, name, False)

    def get(self, name: str) -> Bucket:
        """The bucket `name`, made from the template with the longest matching prefix if
        it does not exist yet. The handle follows its bucket: once the tenant was deleted (an
        idle tenant its template's expiry removed), the next call makes it anew, with the
        full budget the idle one had."""
        return Bucket(self, name, True)

    def define(self, name: str, rules: str, parent: Optional[str] = None) -> Bucket:
        """Create bucket `name` with `rules` ("200/60s", "120/1m burst 20, 1000/1h"), or find
        it if it exists with the same rules and parent (else Exists)."""
        _core.Table.define(self, name, rules, parent, False)
        return Bucket(self, name, False)

    def define_template(self, pattern: str, rules: str, parent: Optional[str] = None,
                        expire: Optional[float] = None) -> Bucket:
        """Define a template ("tenant/*"); its buckets are made on first use by get().
        With `expire` (seconds, 0.001 to 49 days), each is deleted once unused for its
        longest window plus `expire` (the table's automatic expiry)."""
        _core.Table.define(self, pattern, rules, parent, True, _ns(expire))
        return Bucket(self, pattern, False)
