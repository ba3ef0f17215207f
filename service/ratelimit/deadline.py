"""A deadline for Redis calls that does not count time spent waiting for our own event loop.

Under a burst the loop may be busy for hundreds of milliseconds (fresh JWTs, TLS handshakes, hundreds of
requests' CPU). A Redis reply that arrived in time then sits unread in the socket buffer while the loop works,
and a plain `asyncio.timeout` fires in the same loop iteration that would have read it: healthy Redis looks
slow, three such "failures" mark it down, and fail-closed refuses everyone — an outage of our own making.

So when the deadline's timer runs late (the loop was stalled past the due time), the time it was stalled is
given back once more, up to a hard cap; a timer that runs on time means Redis itself was slow.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

# A timer more than this late means the loop, not Redis, held the reply up.
LOOP_LAG_TOLERANCE = 0.005


class RedisDeadline:
    """`async with RedisDeadline(budget, cap)`: TimeoutError once `budget` seconds of Redis time have passed
    (never later than `cap` seconds in all, loop stalls included)."""

    __slots__ = ("_budget", "_cancelling", "_cap_at", "_due", "_expired", "_handle", "_loop", "_task")

    def __init__(self, budget: float, cap: float) -> None:
        self._budget = budget
        self._cap_at = cap  # made absolute on entry
        self._expired = False

    async def __aenter__(self) -> RedisDeadline:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always awaited from a task
            raise RuntimeError("RedisDeadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        now = self._loop.time()
        self._due = now + self._budget
        self._cap_at = now + max(self._cap_at, self._budget)
        self._handle = self._loop.call_at(self._due, self._on_due)
        return self

    def _on_due(self) -> None:
        now = self._loop.time()
        stalled = now - self._due
        if stalled > LOOP_LAG_TOLERANCE and now < self._cap_at:
            self._due = min(now + stalled, self._cap_at)
            self._handle = self._loop.call_at(self._due, self._on_due)
            return
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handle.cancel()
        if self._expired and exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            raise TimeoutError from exc
