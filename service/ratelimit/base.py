"""The limiter interface shared by the Redis and in-memory backends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One GCRA rule applied to one key.

    `layer` is a bounded label ("subject", "tenant", "global", "profile") used in headers and metrics;
    `key` identifies the bucket (already hashed/escaped by the caller, without the backend's prefix).
    GCRA: the emission interval is `period / rate`; up to `burst` requests may pass at once.
    """

    layer: str
    key: str
    rate: int
    period: float
    burst: int

    @property
    def policy_name(self) -> str:
        """Name used in RateLimit-Policy / RateLimit headers, e.g. `subject-60s`."""
        return f"{self.layer}-{self.period:g}s"


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one rule stands after a check."""

    check: LimitCheck
    remaining: int  # requests that could still pass right now
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until one more request would pass (0 when allowed)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of checking all rules of one request atomically (all pass, or none is charged)."""

    allowed: bool
    states: tuple[LimitState, ...]

    @property
    def retry_after(self) -> float:
        """Seconds the caller must wait (0 when allowed)."""
        return max((s.retry_after for s in self.states), default=0.0)


class LimiterUnavailableError(Exception):
    """The backing store could not be reached in time; the caller decides fail-open or fail-closed."""


class RateLimiter(Protocol):
    """Atomic multi-rule GCRA limiter."""

    backend: str  # "redis" or "memory", for metrics and /readyz

    async def acquire(self, checks: Sequence[LimitCheck]) -> Decision:
        """Check every rule and, only if all pass, charge each one request. One round trip."""
        ...

    async def refund(self, checks: Sequence[LimitCheck]) -> None:
        """Give back one request on each rule (used when the mint failed after acquire)."""
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
