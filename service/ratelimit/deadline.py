"""A deadline for Redis calls that does not mistake a busy event loop for a slow Redis.

Under a burst the loop may be busy for hundreds of milliseconds (fresh JWTs, TLS handshakes, hundreds of
requests' CPU). A Redis reply that arrived in time then sits unread in the socket buffer while the loop works,
and a plain `asyncio.timeout` fires before the loop next looks at the socket (uvloop runs timers before it
polls for I/O): healthy Redis looks slow, three such "failures" mark it down, and fail-closed refuses
everyone — an outage of our own making.

So a due deadline does not cancel at once: it lets the loop poll for I/O once more. A reply that is already in
the socket buffer is read then; only a reply that is still missing after `budget` seconds of wall time is a
timeout.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

LOOK_AGAIN = 0.001  # seconds: a due deadline's one more look comes after the loop's next I/O poll


class RedisDeadline:
    """`async with RedisDeadline(budget)`: TimeoutError when Redis has not answered `budget` seconds after the
    block began, judged at the first I/O poll after that (however late the loop gets there)."""

    __slots__ = ("_budget", "_cancelling", "_expired", "_handle", "_looked", "_loop", "_settling", "_task")

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._expired = False
        self._looked = False
        self._settling = False
        self._handle: asyncio.Handle

    async def __aenter__(self) -> RedisDeadline:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always awaited from a task
            raise RuntimeError("RedisDeadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = self._loop.call_at(self._loop.time() + self._budget, self._on_due)
        return self

    def _on_due(self) -> None:
        if not self._looked:
            # Due: one more loop iteration, whose I/O poll delivers a reply that is already waiting. The look is a
            # timer a millisecond on: a zero-delay one runs before the next poll on uvloop (it becomes a
            # call_soon), a real timer only after it, on both loops.
            self._looked = True
            self._handle = self._loop.call_at(self._loop.time() + LOOK_AGAIN, self._on_due)
            return
        if not self._settling:
            # That poll may have delivered the reply and scheduled our task's wake-up, which has not run yet (a
            # loop runs timers before the callbacks a poll scheduled, and a poll can outlast the millisecond).
            # Decide after those callbacks: one queued behind them runs only if the block is still waiting.
            self._settling = True
            self._handle = self._loop.call_soon(self._on_due)
            return
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handle.cancel()
        if self._expired and exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            raise TimeoutError from exc
