"""Admission: how many token requests this process works on at once, and a bounded wait for the rest.

A request that finds every slot busy waits in a FIFO queue for up to `server.queue_timeout`, and is refused with
`503 overloaded` only when it cannot start in time: at once when the queue is full (`server.max_queue`) or when
the queue's measured drain rate says it would not start before its deadline, and at its deadline otherwise.
A caller would rather wait 300 ms more than retry; a caller that would wait in vain is told at once, with a
`Retry-After` computed from the same rate.

The drain rate is what the slots give back: `slots / mean time a slot is held`, the mean an exponentially
weighted average over finished requests. Measured on holding times, not on completions per second, it is right
from the first few completions of a burst (which finish together) and follows the process when CPU, not
Google, is what slows it down. Before anything has finished there is no measure, and only the queue's length
and each waiter's own deadline bound the wait.

A slot freed while someone waits passes to the queue's head directly (never back to the pool), so a request
arriving at that moment cannot overtake the queue.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from service.errors import Overloaded

_WEIGHT = 0.05  # each finished request moves the mean holding time by 5%: ~20 requests of memory
_MAX_RETRY_AFTER = 30
_MEMORY_SECONDS = 10.0  # after this long without a completion, the next one mostly replaces the measure


class _Waiter:
    """One request in the queue: its future (set when a slot is handed to it) and its deadline."""

    __slots__ = ("deadline", "future", "timer")

    def __init__(self, future: asyncio.Future[None], deadline: float) -> None:
        self.future = future
        self.deadline = deadline
        self.timer: asyncio.TimerHandle | None = None


class Admission:
    """Slots, a FIFO queue with a bounded wait, and what they say about the load (read by the metrics)."""

    def __init__(
        self,
        slots: int,
        queue_timeout: float,
        max_queue: int,
        on_shed: Callable[[str], None] = lambda why: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slots = slots
        self.queue_timeout = queue_timeout
        self.max_queue = max_queue
        self._on_shed = on_shed  # why: "queue_full", "wait_too_long" (judged by the rate) or "timed_out"
        self._clock = clock
        self.busy = 0
        self._queue: deque[_Waiter] = deque()
        self.waiting = 0  # live waiters (the deque may still hold ones that went away, skipped when reached)
        self.mean_hold: float | None = None  # seconds a slot is held, once one request has finished
        self._last_leave = 0.0

    def configure(self, slots: int, queue_timeout: float, max_queue: int) -> None:
        """Take a reloaded configuration's bounds; requests already admitted or waiting keep their places."""
        self.slots, self.queue_timeout, self.max_queue = slots, queue_timeout, max_queue
        self._refill()

    def drain_rate(self) -> float | None:
        """Requests per second the slots give back, once measured."""
        if self.mean_hold is None:
            return None
        return self.slots / max(self.mean_hold, 1e-3)

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody waits for it (the fast path: nothing awaited)."""
        if self.busy < self.slots and not self.waiting:
            self.busy += 1
            return True
        return False

    async def wait(self) -> float:
        """Queue for a slot (FIFO) after `try_enter` found none; return how long the wait was, or raise
        Overloaded (with Retry-After) when the request cannot start within `queue_timeout`."""
        position = self.waiting + 1
        if self.queue_timeout <= 0 or self.waiting >= self.max_queue:
            raise self._shed("queue_full", position)
        expected = self._expected_wait(position)
        if expected is not None and expected > self.queue_timeout:
            raise self._shed("wait_too_long", position)
        loop = asyncio.get_running_loop()
        now = self._clock()
        waiter = _Waiter(loop.create_future(), now + self.queue_timeout)
        waiter.timer = loop.call_later(self.queue_timeout, self._expire, waiter)
        self._queue.append(waiter)
        self.waiting += 1
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self._give_back()  # a slot reached it just as its caller went away: pass it on
            else:
                self._forget(waiter)
                self._refill()
            raise
        return self._clock() - now

    def leave(self, held: float) -> None:
        """Give back a slot held for `held` seconds: to the queue's head if someone waits, else to the pool."""
        now = self._clock()
        if self.mean_hold is None:
            self.mean_hold = held
        else:
            # 5% per completion, more after a quiet spell: a measure taken long ago (one slow request, an upstream
            # blip) must not shed the next burst on arrival.
            weight = max(_WEIGHT, 1.0 - math.exp(-(now - self._last_leave) / _MEMORY_SECONDS))
            self.mean_hold += weight * (held - self.mean_hold)
        self._last_leave = now
        self._give_back()
        self._shed_hopeless()

    def _give_back(self) -> None:
        # Above the bound (a reload lowered it) a freed slot goes back to the pool, not to the next in the queue.
        if self.busy > self.slots or not self._hand_over():
            self.busy -= 1

    def _refill(self) -> None:
        """Hand free slots to waiters: a waiter that went away may have let a slot go back to the pool meanwhile."""
        while self.busy < self.slots and self._hand_over():
            self.busy += 1

    def _hand_over(self) -> bool:
        """Pass a slot to the first live waiter (the slot stays counted busy); False if nobody waits."""
        while self._queue:
            waiter = self._queue.popleft()
            if waiter.future.done():
                continue  # went away or timed out: already uncounted
            self.waiting -= 1
            if waiter.timer is not None:
                waiter.timer.cancel()
            waiter.future.set_result(None)
            return True
        return False

    def _shed(self, why: str, position: int) -> Overloaded:
        self._on_shed(why)
        return Overloaded(retry_after=self._retry_after(position))

    def _expire(self, waiter: _Waiter) -> None:
        """A waiter's deadline passed before a slot reached it."""
        if not waiter.future.done():
            self.waiting -= 1
            waiter.future.set_exception(self._shed("timed_out", self.waiting + 1))
        while self._queue and self._queue[0].future.done():  # the ones that gave up first are at the head
            self._queue.popleft()

    def _forget(self, waiter: _Waiter) -> None:
        """A waiter whose caller went away: uncount it; the deque drops it when reached."""
        if waiter.timer is not None:
            waiter.timer.cancel()
        if not waiter.future.done():
            waiter.future.cancel()
        if waiter.future.cancelled():
            self.waiting -= 1

    def _shed_hopeless(self) -> None:
        """Refuse now, from the back of the queue, the waiters the measured rate says won't start in time."""
        rate = self.drain_rate()
        if rate is None:
            return
        now = self._clock()
        while self._queue:
            waiter = self._queue[-1]
            if waiter.future.done():
                self._queue.pop()
                continue
            if now + self.waiting / rate <= waiter.deadline:
                return
            self._queue.pop()
            if waiter.timer is not None:
                waiter.timer.cancel()
            self.waiting -= 1
            waiter.future.set_exception(self._shed("wait_too_long", self.waiting + 1))

    def _expected_wait(self, position: int) -> float | None:
        rate = self.drain_rate()
        return None if rate is None else position / rate

    def _retry_after(self, position: int) -> float:
        """Whole seconds until a request at `position` could start at the measured rate; 1 before a measure."""
        expected = self._expected_wait(position)
        if expected is None:
            return 1.0
        return float(min(_MAX_RETRY_AFTER, max(1, math.ceil(expected))))
