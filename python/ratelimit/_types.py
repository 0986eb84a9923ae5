"""The exceptions and result types of the ratelimit package."""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type


class Error(Exception):
    """A libratelimit error: ``code`` (the negative RL_E* value), ``name`` ("RL_EFULL"),
    ``message`` (rl_strerror) and ``detail`` (rl_errdetail: what and where, may be "")."""

    code: int = 0
    name: str = "RL_EUNKNOWN"

    def __init__(self, code: int, message: str = "", detail: str = "") -> None:
        self.code, self.message, self.detail = code, message, detail
        super().__init__(f"{message}: {detail}" if detail else message)


class Limited(Error):
    """RL_ELIMITED: the budget does not allow the request now (or every attempt got a 429)."""

    response: Any = None  # bucket.call: the last response, a 429


class Timeout(Error, builtins.TimeoutError):
    """RL_ETIMEDOUT: the request would not be admitted before the deadline."""


class InvalidArgument(Error, ValueError):
    """RL_EINVAL."""


class OutOfMemory(Error, MemoryError):
    """RL_ENOMEM."""


class NotFound(Error, LookupError):
    """RL_ENOENT: no such bucket (or no table and create=False)."""


class Exists(Error):
    """RL_EEXIST: the bucket exists with different rules or parent."""


class Full(Error):
    """RL_EFULL: the table has no room for another bucket or its state."""


class SystemCallError(Error, OSError):
    """RL_ESYS: a system call failed (the detail says which)."""


class BadTable(Error):
    """RL_EBADTABLE: not a ratelimit table, or the file is damaged."""


class VersionMismatch(Error):
    """RL_EVERSION: the table's layout version is not this library's."""


class Stale(Error):
    """RL_ESTALE: the table was created before the last reboot, or replaced or lost."""


class PermissionDenied(Error, PermissionError):
    """RL_EPERM: read-only table, or a file that is not trusted."""


class InvalidName(Error, ValueError):
    """RL_ENAME: an invalid bucket name."""


class ParseError(Error, ValueError):
    """RL_EPARSE: invalid rule text or config file (the detail says where)."""


class CostTooHigh(Error, ValueError):
    """RL_ECOST: the cost exceeds what any rule of the bucket can ever admit."""


class Cycle(Error):
    """RL_ECYCLE: the parent chain is too deep or forms a cycle."""


class Corrupt(Error):
    """RL_ECORRUPT: the bucket's state is damaged; it refuses all requests."""


ERRORS: Dict[str, Type[Error]] = {
    "RL_ELIMITED": Limited, "RL_ETIMEDOUT": Timeout, "RL_EINVAL": InvalidArgument,
    "RL_ENOMEM": OutOfMemory, "RL_ENOENT": NotFound, "RL_EEXIST": Exists, "RL_EFULL": Full,
    "RL_ESYS": SystemCallError, "RL_EBADTABLE": BadTable, "RL_EVERSION": VersionMismatch,
    "RL_ESTALE": Stale, "RL_EPERM": PermissionDenied, "RL_ENAME": InvalidName,
    "RL_EPARSE": ParseError, "RL_ECOST": CostTooHigh, "RL_ECYCLE": Cycle,
    "RL_ECORRUPT": Corrupt,
}


@dataclass(frozen=True)
class Decision:
    """One decision. ``at_ns``: the admission instant (admitted) or the decision instant,
    CLOCK_MONOTONIC ns (time.monotonic_ns() reads the same clock). ``wait_ns``: refused,
    how long until it would be admitted. ``remaining``: units still available now in the
    tightest rule of the chain."""

    admitted: bool
    at_ns: int
    wait_ns: int
    remaining: int
    dry_run_rejected: bool = False


@dataclass(frozen=True)
class Feedback:
    """What rl_report made of a response: the pool's pause from now (``cooldown_ns``),
    the pool's consecutive 429s without Retry-After (``backoff``), whether the server's
    remaining budget now limits the bucket, and which values were ignored as malformed
    (a bit mask of IGNORED_*)."""

    cooldown_ns: int
    backoff: int
    tightened: bool
    ignored: int


@dataclass(frozen=True)
class RuleState:
    kind: str  # "sliding", "gcra" or "fixed"
    limit: int
    period_ns: int
    burst: int
    used: int  # units counted in the current window (GCRA: debt in units)
    remaining: int  # units admissible right now
    next_free_ns: int  # ns from now until the next unit is available (0: now)


@dataclass(frozen=True)
class Counters:
    admitted: int
    admitted_units: int
    rejected: int
    waited: int
    waited_ns: int
    dry_run_rejected: int
    resets: int
    reported_429: int


@dataclass(frozen=True)
class FeedbackState:
    cooldown_ns: int  # pause left from now (0: none)
    last_429_ns: int  # CLOCK_MONOTONIC instant of the latest 429 (0: never)
    backoff: int
    server_remaining: int
    server_reset_ns: int  # time until the server's reset (0: not tightened)


@dataclass(frozen=True)
class BucketInfo:
    """A bucket's state (rl_bucket_info)."""

    name: str
    parent: Optional[str]
    policy: str  # canonical rule text, e.g. "200/60s"
    rules: List[RuleState] = field(default_factory=list)
    counters: Optional[Counters] = None
    feedback: Optional[FeedbackState] = None
    is_template: bool = False
    now_ns: int = 0

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "BucketInfo":
        return cls(name=d["name"], parent=d["parent"] or None, policy=d["policy"],
                   rules=[RuleState(*r) for r in d["rules"]],
                   counters=Counters(*d["counters"]), feedback=FeedbackState(*d["feedback"]),
                   is_template=d["is_template"], now_ns=d["now_ns"])
