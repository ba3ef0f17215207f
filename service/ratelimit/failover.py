"""What happens when Redis is unavailable: refuse (fail closed) or limit per replica in memory (fail open).

After a failure Redis is skipped for a short back-off, so requests do not each pay the Redis timeout while it
is down; then one request probes it again. Recovery is automatic.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Literal

from service.errors import RateLimiterUnavailable
from service.logging import get_logger
from service.metrics import Metrics
from service.ratelimit.base import Decision, LimitCheck, LimiterUnavailableError, RateLimiter
from service.ratelimit.memory import MemoryRateLimiter

log = get_logger("livetoken.ratelimit")
State = Literal["ok", "fallback", "unavailable"]


class FailMode:
    """The one decision of what a request does when Redis cannot answer: refuse it (closed) or go on with this
    replica's own memory (open). The limiter and the idempotency store both ask it."""

    def __init__(self, mode: Literal["closed", "open"], metrics: Metrics) -> None:
        self.mode = mode
        self._metrics = metrics

    @property
    def is_open(self) -> bool:
        """Whether requests go on in memory while Redis is down."""
        return self.mode == "open"

    def use_fallback(self) -> None:
        """Called when Redis cannot answer: raises the fast 503 when closed, counts a fallback decision when open."""
        if self.mode == "closed":
            raise RateLimiterUnavailable(retry_after=1.0)
        self._metrics.ratelimit_fallback_decisions.inc()


class FailoverRateLimiter:
    """Wraps the Redis limiter with the configured fail mode."""

    def __init__(  # noqa: PLR0917 - wired in one place; the tuning arguments have defaults
        self,
        primary: RateLimiter,
        fail_mode: FailMode,
        metrics: Metrics,
        backoff: float = 0.5,
        failure_threshold: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.backend = primary.backend
        self._fail_mode = fail_mode
        self._metrics = metrics
        self._fallback = MemoryRateLimiter()
        self._backoff = backoff
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self._failures = 0
        self._threshold = failure_threshold

    def _mark_down(self, reason: str = "unreachable") -> None:
        self._failures += 1
        if self._failures < self._threshold:
            return  # one slow or failed call is not an outage; only this request follows the fail mode
        self._down_until = self._clock() + self._backoff
        if not self._down:
            self._down = True
            log.warning("ratelimit_store_down", fail_mode=self._fail_mode.mode, error_type=reason)
            if self._fail_mode.is_open:
                self._metrics.ratelimit_fallback.set(1)

    def _mark_up(self) -> None:
        self._failures = 0
        if self._down:
            self._down = False
            log.info("ratelimit_store_recovered")
            self._metrics.ratelimit_fallback.set(0)

    def _fallback_decision(self, checks: Sequence[LimitCheck], *, charge: bool = True) -> Decision:
        # Blocks live in Redis: while it is down, a replica failing open cannot see them (README: Operating).
        self._fail_mode.use_fallback()
        return dataclasses.replace(self._fallback.decide(checks, charge=charge), in_memory=True)

    async def acquire(self, checks: Sequence[LimitCheck], blocks: Sequence[str] = ()) -> Decision:
        """Decide on Redis; on failure follow the fail mode."""
        if self._down and self._clock() < self._down_until:
            return self._fallback_decision(checks)
        try:
            decision = await self.primary.acquire(checks, blocks)
        except LimiterUnavailableError as exc:
            if exc.counted:
                self._mark_down(str(exc))
            return self._fallback_decision(checks)
        self._mark_up()
        return decision

    async def peek(self, checks: Sequence[LimitCheck]) -> Decision:
        """Read on Redis; on failure follow the fail mode (the fallback's own view when open)."""
        if self._down and self._clock() < self._down_until:
            return self._fallback_decision(checks, charge=False)
        try:
            return await self.primary.peek(checks)
        except LimiterUnavailableError as exc:
            if exc.counted:
                self._mark_down(str(exc))
            return self._fallback_decision(checks, charge=False)

    async def refund(self, checks: Sequence[LimitCheck], *, in_memory: bool = False) -> None:
        """Refund where the request was charged: this replica's memory (its decision says so) or Redis."""
        if in_memory:
            self._fallback.give_back(checks)
        else:
            await self.primary.refund(checks)

    async def state(self) -> State:
        """For /readyz: ok, fallback (fail open, Redis down) or unavailable (fail closed, Redis down)."""
        if await self.primary.ping():
            self._mark_up()
            return "ok"
        self._failures = max(self._failures, self._threshold - 1)  # a failed health probe is decisive
        self._mark_down()
        return "fallback" if self._fail_mode.is_open else "unavailable"

    async def warm(self) -> None:
        """Warm the primary; Redis down at start-up is not fatal (readiness and the fail mode say what happens)."""
        try:
            await self.primary.warm()
        except LimiterUnavailableError as exc:
            log.warning("ratelimit_warm_failed", error_type=str(exc))

    async def ping(self) -> bool:
        """Whether the primary store answers."""
        return await self.primary.ping()

    async def aclose(self) -> None:
        """Close the primary."""
        await self.primary.aclose()
