"""In-process GCRA with the same semantics as the Redis script: dev mode and the fail-open fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from service.ratelimit.base import Decision, LimitCheck, LimitState


class MemoryRateLimiter:
    """Atomic within one event loop: no await happens between reading and writing a bucket."""

    backend = "memory"

    def __init__(self, max_keys: int = 200_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys
        self._clock = clock

    def decide(self, checks: Sequence[LimitCheck]) -> Decision:
        """Synchronous core of `acquire` (also used by the fail-open fallback)."""
        now = self._clock()
        states: list[LimitState] = []
        new_tats: list[float] = []
        allowed = True
        for c in checks:
            interval = c.period / c.rate
            tat = max(self._tats.get(c.key, now), now)
            tau = interval * (c.burst - 1)
            if tat - now > tau:
                allowed = False
                states.append(LimitState(c, 0, tat - now, tat - now - tau))
            else:
                new_tat = tat + interval
                new_tats.append(new_tat)
                remaining = int((c.burst * interval - (new_tat - now)) // interval)
                states.append(LimitState(c, remaining, new_tat - now, 0.0))
        if allowed:
            if len(self._tats) + len(checks) > self._max_keys:
                self._evict(now)
            for c, tat in zip(checks, new_tats, strict=True):
                self._tats[c.key] = tat
        return Decision(allowed, tuple(states))

    def _evict(self, now: float) -> None:
        # A bucket whose TAT has passed is full again: forgetting it changes nothing.
        stale = [k for k, tat in self._tats.items() if tat <= now]
        for k in stale:
            del self._tats[k]
        while len(self._tats) >= self._max_keys:
            self._tats.pop(next(iter(self._tats)))

    async def acquire(self, checks: Sequence[LimitCheck]) -> Decision:
        """See RateLimiter.acquire."""
        return self.decide(checks)

    def give_back(self, checks: Sequence[LimitCheck]) -> None:
        """Synchronous core of `refund`."""
        now = self._clock()
        for c in checks:
            tat = self._tats.get(c.key)
            if tat is not None:
                new_tat = tat - c.period / c.rate
                if new_tat <= now:
                    del self._tats[c.key]
                else:
                    self._tats[c.key] = new_tat

    async def refund(self, checks: Sequence[LimitCheck]) -> None:
        """See RateLimiter.refund."""
        self.give_back(checks)

    async def warm(self) -> None:
        """Nothing to open."""

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""
