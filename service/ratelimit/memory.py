"""In-process limiter with the same semantics as the Redis script: dev mode and the fail-open fallback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from service.ratelimit.base import BlockHit, Decision, LimitCheck, LimitState


class MemoryRateLimiter:
    """Atomic within one event loop: no await happens between reading and writing a bucket.

    Blocks set here (dev mode's admin endpoint) live in this process only.
    """

    backend = "memory"

    def __init__(
        self,
        max_keys: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._tats: dict[str, float] = {}  # GCRA: theoretical arrival time (clock seconds)
        self._windows: dict[str, tuple[int, float]] = {}  # calendar budgets: (units used, window end, wall clock)
        self.blocks: dict[str, tuple[float, bytes]] = {}  # block id -> (expiry on the wall clock, its record)
        self._max_keys = max_keys
        self._clock = clock
        self._wall = wall_clock

    def blocked(self, blocks: Sequence[str]) -> BlockHit | None:
        """The first of `blocks` in force."""
        now = self._wall()
        for block in blocks:
            entry = self.blocks.get(block)
            if entry is not None:
                if entry[0] > now:
                    return BlockHit(block, entry[0] - now)
                del self.blocks[block]
        return None

    def decide(self, checks: Sequence[LimitCheck], blocks: Sequence[str] = (), *, charge: bool = True) -> Decision:
        """Synchronous core of `acquire` and `peek` (also used by the fail-open fallback)."""
        hit = self.blocked(blocks)
        if hit is not None:
            return Decision(False, (), hit)
        now = self._clock()
        wall = self._wall()
        states: list[LimitState] = []
        writes: list[tuple[LimitCheck, float]] = []
        for c in checks:
            cost = c.cost if charge else 0
            state, write = self._gcra(c, cost, now) if c.window_end is None else self._window(c, cost, wall)
            states.append(state)
            if write is not None:
                writes.append((c, write))
        allowed = len(writes) == len(checks)
        if allowed and charge:
            if len(self._tats) + len(self._windows) + len(checks) > self._max_keys:
                self._evict(now, wall)
            for c, value in writes:
                if c.window_end is None:
                    self._tats[c.key] = value
                else:
                    self._windows[c.key] = (int(value), c.window_end)
        return Decision(allowed, tuple(states))

    def _gcra(self, c: LimitCheck, cost: int, now: float) -> tuple[LimitState, float | None]:
        interval = c.period / c.rate
        tat = max(self._tats.get(c.key, now), now)
        new_tat = tat + interval * cost
        over = new_tat - now - c.burst * interval
        if over > 1e-9:
            return LimitState(
                c, max(0, math.floor((c.burst * interval - (tat - now)) / interval)), tat - now, over
            ), None
        remaining = math.floor((c.burst * interval - (new_tat - now)) / interval + 1e-9)
        return LimitState(c, remaining, new_tat - now, 0.0), new_tat

    def _window(self, c: LimitCheck, cost: int, wall: float) -> tuple[LimitState, float | None]:
        window_end = c.window_end if c.window_end is not None else wall
        used, ends = self._windows.get(c.key, (0, window_end))
        if ends <= wall:
            used = 0
        left = max(0.001, window_end - wall)
        if used + cost > c.burst:
            return LimitState(c, max(0, c.burst - used), left, left), None
        return LimitState(c, c.burst - used - cost, left, 0.0), float(used + cost)

    def _evict(self, now: float, wall: float) -> None:
        # A bucket whose TAT has passed is full again, a window that ended is empty: forgetting them changes nothing.
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]
        for key in [k for k, (_, ends) in self._windows.items() if ends <= wall]:
            del self._windows[key]
        while len(self._tats) >= self._max_keys:
            self._tats.pop(next(iter(self._tats)))
        while len(self._windows) >= self._max_keys:
            self._windows.pop(next(iter(self._windows)))

    async def acquire(self, checks: Sequence[LimitCheck], blocks: Sequence[str] = ()) -> Decision:
        """See RateLimiter.acquire."""
        return self.decide(checks, blocks)

    async def peek(self, checks: Sequence[LimitCheck]) -> Decision:
        """See RateLimiter.peek."""
        return self.decide(checks, charge=False)

    def give_back(self, checks: Sequence[LimitCheck]) -> None:
        """Synchronous core of `refund`."""
        now = self._clock()
        for c in checks:
            if c.window_end is not None:
                entry = self._windows.get(c.key)
                if entry is not None:
                    self._windows[c.key] = (max(0, entry[0] - c.cost), entry[1])
                continue
            tat = self._tats.get(c.key)
            if tat is not None:
                new_tat = tat - c.period / c.rate * c.cost
                if new_tat <= now:
                    del self._tats[c.key]
                else:
                    self._tats[c.key] = new_tat

    async def refund(self, checks: Sequence[LimitCheck], *, in_memory: bool = False) -> None:
        """See RateLimiter.refund."""
        self.give_back(checks)

    async def warm(self) -> None:
        """Nothing to open."""

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""
