"""The limiter interface shared by the Redis and in-memory backends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One rule applied to one key.

    `layer` is a bounded label ("subject", "tenant", "global", "profile", "budget-subject", "budget-tenant") used
    in headers and metrics; `key` identifies the bucket (already hashed/escaped by the caller, without the
    backend's prefix). A rate rule is GCRA: the emission interval is `period / rate`; up to `burst` units may pass
    at once. A request spends `cost` units (1 for rate limits; a profile's cost for budgets). A calendar budget is
    a fixed window instead: at most `burst` units until `window_end` (epoch seconds), when it starts afresh.

    What every request reads of a check (its header name, kind, interval, verdict slot) is derived once, here:
    the issuer keeps a caller's checks between requests.
    """

    layer: str
    key: str
    rate: int
    period: float
    burst: int
    cost: int = 1
    window_end: float | None = None
    # Name used in RateLimit-Policy / RateLimit headers, e.g. `subject-60s`, `budget-subject-86400s`.
    policy_name: str = field(init=False, repr=False, compare=False)
    is_budget: bool = field(init=False, repr=False, compare=False)  # a spend budget rather than a rate limit
    interval_us: int = field(init=False, repr=False, compare=False)  # GCRA emission interval, microseconds
    slot: str = field(init=False, repr=False, compare=False)  # bucket and cost: what one verdict is about
    policy_item: str = field(init=False, repr=False, compare=False)  # this rule in a RateLimit-Policy header

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__  # a frozen dataclass sets its derived fields this way
        setattr_(self, "policy_name", f"{self.layer}-{self.period:g}s")
        setattr_(self, "is_budget", self.layer.startswith("budget"))
        setattr_(self, "interval_us", max(1, round(self.period / self.rate * 1_000_000)) if self.rate > 0 else 1)
        # A budget's verdict holds for this cost only: a cheaper profile may still fit in what is left.
        setattr_(self, "slot", f"{self.key}#{self.cost}")
        setattr_(self, "policy_item", f'"{self.policy_name}";q={self.rate};w={math.ceil(self.period)}')


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one rule stands after a check."""

    check: LimitCheck
    remaining: int  # requests that could still pass right now
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until one more request would pass (0 when allowed)


@dataclass(frozen=True, slots=True)
class BlockHit:
    """The request's caller (or its tenant) is blocked: which block, and for how much longer."""

    block_id: str
    remaining: float  # seconds until the block expires by itself


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of checking all rules of one request atomically (all pass, or none is charged)."""

    allowed: bool
    states: tuple[LimitState, ...]
    blocked: BlockHit | None = None
    in_memory: bool = False  # charged by a replica's memory (fail open) rather than Redis: refund it there

    @property
    def retry_after(self) -> float:
        """Seconds the caller must wait (0 when allowed)."""
        return max((s.retry_after for s in self.states), default=0.0)


class LimiterUnavailableError(Exception):
    """The backing store could not be reached in time; the caller decides fail-open or fail-closed.

    `counted` is False for a request that failed only because the command ahead of it on the same connection did:
    that is one failure of the store, already counted, not one more towards declaring it down.
    """

    def __init__(self, reason: str, *, counted: bool = True) -> None:
        super().__init__(reason)
        self.counted = counted


class RateLimiter(Protocol):
    """Atomic multi-rule GCRA limiter."""

    backend: str  # "redis" or "memory", for metrics and /readyz

    async def acquire(self, checks: Sequence[LimitCheck], blocks: Sequence[str] = ()) -> Decision:
        """Refuse if any of `blocks` is in force; else check every rule and, only if all pass, charge each its
        cost. One round trip."""
        ...

    async def peek(self, checks: Sequence[LimitCheck]) -> Decision:
        """Where every rule stands now, charging nothing (for GET /v1/usage). One round trip."""
        ...

    async def refund(self, checks: Sequence[LimitCheck], *, in_memory: bool = False) -> None:
        """Give back each rule's cost (used when the mint failed after acquire), where the decision charged it."""
        ...

    async def ping(self) -> bool:
        """Whether the backend answers now (for /readyz)."""
        ...

    async def warm(self) -> None:
        """Open connections and load scripts before the process says it is ready (best effort)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
