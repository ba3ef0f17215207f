"""Admission with a bounded wait (service/issuing/admission.py): who gets a place, in which order, who is refused
and when, and what Retry-After says. The HTTP-level behaviour under a real burst is in tests/hardening/test_burst.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from service.errors import Overloaded
from service.issuing.admission import Admission


class Clock:
    """A monotonic clock the test moves (the drain rate is computed from it; timers use the loop's own)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(slots: int, queue_timeout: float = 2.0, max_queue: int = 100) -> tuple[Admission, list[str]]:
    shed: list[str] = []
    return Admission(slots, queue_timeout, max_queue, shed.append, Clock()), shed


async def test_a_freed_place_goes_to_the_longest_waiter_first_and_never_to_a_newcomer() -> None:
    gate, shed = admission(slots=1)
    assert gate.try_enter()
    order: list[int] = []

    async def caller(number: int) -> None:
        await gate.wait()
        order.append(number)

    waiters = [asyncio.create_task(caller(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert gate.waiting == 3
    gate.leave(0.1)
    await asyncio.sleep(0)
    assert order == [0]
    assert not gate.try_enter()  # the place went to the queue's head, not back to the pool
    gate.leave(0.1)
    gate.leave(0.1)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2]
    assert (gate.busy, gate.waiting, shed) == (1, 0, [])
    gate.leave(0.1)
    assert gate.busy == 0


async def test_a_full_queue_refuses_at_once_with_retry_after_one_before_any_measure() -> None:
    gate, shed = admission(slots=1, max_queue=2)
    assert gate.try_enter()
    waiting = [asyncio.create_task(gate.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(Overloaded) as refused:
        await gate.wait()
    assert time.monotonic() - started < 0.05
    assert refused.value.headers() == {"Retry-After": "1"}
    assert shed == ["queue_full"]
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert gate.waiting == 0


async def test_queue_timeout_zero_is_the_old_fast_refusal() -> None:
    gate, shed = admission(slots=1, queue_timeout=0.0)
    assert gate.try_enter()
    with pytest.raises(Overloaded):
        await gate.wait()
    assert shed == ["queue_full"]


async def test_a_request_the_measured_rate_says_would_wait_too_long_is_refused_at_once() -> None:
    """One place held 1 s per request drains one request a second: with a 2 s wait allowed, the second in the
    queue may wait, the third is told at once, with Retry-After from the same rate (3 s)."""
    gate, shed = admission(slots=1, queue_timeout=2.0)
    assert gate.try_enter()
    gate.leave(1.0)  # measured: a place is held 1 s
    assert gate.try_enter()
    waiting = [asyncio.create_task(gate.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert gate.waiting == 2
    with pytest.raises(Overloaded) as refused:
        await gate.wait()
    assert refused.value.headers() == {"Retry-After": "3"}
    assert shed == ["wait_too_long"]
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_waiter_is_refused_at_its_deadline_not_before_and_not_much_after() -> None:
    gate, shed = admission(slots=1, queue_timeout=0.3)
    assert gate.try_enter()
    started = time.monotonic()
    with pytest.raises(Overloaded):
        await gate.wait()
    waited = time.monotonic() - started
    assert 0.29 <= waited < 0.6, waited
    assert (shed, gate.waiting, gate.busy) == (["timed_out"], 0, 1)
    gate.leave(0.1)  # the place goes back to the pool: nobody waits for it
    assert gate.busy == 0


async def test_when_the_rate_drops_the_back_of_the_queue_is_told_at_once() -> None:
    """Four wait behind one place; then requests turn out to take 1.5 s each: with 2 s allowed, the last ones
    cannot start in time and are refused at the next release, not left to time out."""
    gate, shed = admission(slots=1, queue_timeout=2.0)
    assert gate.try_enter()
    outcomes: list[str] = []

    async def caller() -> None:
        try:
            await gate.wait()
            outcomes.append("admitted")
        except Overloaded:
            outcomes.append("refused")

    tasks = [asyncio.create_task(caller()) for _ in range(4)]
    await asyncio.sleep(0)
    gate.leave(1.5)  # the first waiter gets the place; three wait; one more place in 2 s at most
    await asyncio.sleep(0)
    assert sorted(outcomes) == ["admitted", "refused", "refused"]
    assert shed == ["wait_too_long", "wait_too_long"]
    assert gate.waiting == 1
    gate.leave(1.5)
    gate.leave(1.5)
    await asyncio.gather(*tasks)
    assert outcomes.count("admitted") == 2
    assert (gate.busy, gate.waiting) == (0, 0)


async def test_a_caller_that_goes_away_while_waiting_gives_up_its_place_in_the_queue() -> None:
    gate, _ = admission(slots=1)
    assert gate.try_enter()
    first = asyncio.create_task(gate.wait())
    second = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert gate.waiting == 1
    gate.leave(0.1)
    await asyncio.wait_for(second, 1)
    assert (gate.busy, gate.waiting) == (1, 0)


async def test_a_larger_reloaded_bound_lets_waiters_in_at_once() -> None:
    gate, _ = admission(slots=1)
    assert gate.try_enter()
    waiting = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    gate.configure(slots=3, queue_timeout=2.0, max_queue=100)
    await asyncio.sleep(0)
    assert [t.done() for t in waiting] == [True, True, False]
    assert (gate.busy, gate.waiting) == (3, 1)
    gate.leave(0.1)
    await asyncio.wait_for(waiting[2], 1)


async def test_a_lowered_bound_holds_while_callers_wait() -> None:
    """A reload lowers four places to one while ten wait: freed places go back to the pool until only one is
    busy, then the queue moves one at a time."""
    gate, _ = admission(slots=4)
    for _ in range(4):
        assert gate.try_enter()
    waiting = [asyncio.create_task(gate.wait()) for _ in range(10)]
    await asyncio.sleep(0)
    gate.configure(slots=1, queue_timeout=2.0, max_queue=100)
    busy = []
    for _ in range(4):
        gate.leave(0.1)
        busy.append(gate.busy)
    assert busy == [3, 2, 1, 1]
    assert gate.waiting == 9
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_place_freed_while_the_only_waiter_left_goes_to_the_next_one() -> None:
    """The waiter is cancelled and a place given back in the same loop pass, and a newcomer queues behind that
    free place: it gets the place at once, not at its deadline."""
    gate, shed = admission(slots=1, queue_timeout=0.5)
    assert gate.try_enter()
    first = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    started = time.monotonic()
    newcomer = asyncio.create_task(gate.wait())  # runs before the cancelled waiter hears of its cancellation
    first.cancel()
    gate.leave(0.1)
    assert not gate.try_enter()  # the cancelled waiter is still counted: the newcomer queues
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(newcomer, 1)
    assert time.monotonic() - started < 0.1
    assert (gate.busy, gate.waiting, shed) == (1, 0, [])


async def test_an_old_slow_measure_does_not_shed_the_next_burst() -> None:
    """Requests held 8 s once; a minute later requests take 0.3 s: the first completion after the quiet minute
    mostly replaces the measure, so the queue is judged on today's speed."""
    clock = Clock()
    gate = Admission(1, 2.0, 100, clock=clock)
    assert gate.try_enter()
    gate.leave(8.0)
    clock.now += 60
    assert gate.try_enter()
    gate.leave(0.3)
    assert gate.mean_hold is not None
    assert gate.mean_hold < 0.35
