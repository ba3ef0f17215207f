"""A busy event loop is not a slow Redis: a reply that arrived in time is read, however late the loop gets to
it; a Redis that is really slow still times out, on time when the loop is idle and one loop iteration late
when it is busy.

Each test runs on uvloop, as the service does: its timers and socket reads interleave as in production (on
the default loop a plain asyncio.timeout happened to let these replies through).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import pytest
import redis.asyncio as aioredis
import uvloop

from service.ratelimit.connections import LeanConnections
from service.ratelimit.deadline import RedisDeadline
from service.ratelimit.redis import blocking_pool
from tests.support.redis_proc import RedisProcess


def _hog_loop(seconds: float) -> None:
    """Keep the event loop busy without yielding, as a burst of JWT verifications and TLS handshakes does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_reply_that_waited_for_the_loop_is_not_a_timeout(redis_url: str) -> None:
    """50 ms budget, Redis answers in about a millisecond, and the loop is busy for 200 ms around each command
    (its queueing and its write): every command succeeds (a plain asyncio.timeout raised TimeoutError here). The
    busy loop after the write, with the reply waiting in the socket, is the test with the I/O callback below."""

    async def scenario() -> None:
        lean = LeanConnections(blocking_pool(redis_url, 1.0), size=4, timeout=0.05)
        assert await lean.execute("PING") == b"PONG"  # connected: the measured command is only send + reply
        loop = asyncio.get_running_loop()
        results = []
        for i in range(8):
            loop.call_soon(_hog_loop, 0.2)
            results.append(await lean.execute("ECHO", f"r{i}"))
        assert results == [f"r{i}".encode() for i in range(8)]
        await lean.aclose()

    uvloop.run(scenario())


def test_time_before_the_command_is_written_is_not_counted(redis_url: str) -> None:
    """100 ms budget; the loop iteration that queues each command goes on for 300 ms more before the next one
    writes it (a burst's requests verifying their JWTs): the commands succeed, as the wait was ours, not Redis's.
    (With the budget counted from the queueing, each timed out before it was even sent.)"""

    async def scenario() -> None:
        lean = LeanConnections(blocking_pool(redis_url, 1.0), size=1, timeout=0.1)
        assert await lean.execute("PING") == b"PONG"
        loop = asyncio.get_running_loop()
        results = []
        for i in range(5):
            command = asyncio.ensure_future(lean.execute("ECHO", f"q{i}"))  # queued in the next iteration ...
            loop.call_soon(_hog_loop, 0.3)  # ... which then stays busy, before the write
            results.append(await command)
        assert results == [f"q{i}".encode() for i in range(5)]
        await lean.aclose()

    uvloop.run(scenario())


def test_a_frozen_redis_times_out_on_time_when_the_loop_is_idle(redis_proc: RedisProcess) -> None:
    """SIGSTOPped Redis and an idle loop: TimeoutError after the budget (0.1 s), nowhere near the cap."""

    async def scenario() -> None:
        lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=0.1)
        assert await lean.execute("PING") == b"PONG"
        assert redis_proc.proc is not None
        os.kill(redis_proc.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await lean.execute("ECHO", "never")
            assert 0.09 < time.monotonic() - started < 0.3
        finally:
            os.kill(redis_proc.proc.pid, signal.SIGCONT)
        await lean.aclose()

    uvloop.run(scenario())


def test_a_frozen_redis_under_a_busy_loop_still_times_out(redis_proc: RedisProcess) -> None:
    """SIGSTOPped Redis while the loop keeps stalling for 50 ms at a time: TimeoutError one loop iteration after
    the 0.1 s budget, not later."""

    async def scenario() -> None:
        lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=0.1)
        assert await lean.execute("PING") == b"PONG"
        assert redis_proc.proc is not None
        loop = asyncio.get_running_loop()
        stop = False

        def stall() -> None:
            if not stop:
                _hog_loop(0.05)
                loop.call_later(0.01, stall)

        os.kill(redis_proc.proc.pid, signal.SIGSTOP)
        try:
            loop.call_soon(stall)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await lean.execute("ECHO", "never")
            elapsed = time.monotonic() - started
            stop = True
            assert 0.1 < elapsed < 0.3
        finally:
            os.kill(redis_proc.proc.pid, signal.SIGCONT)
        await lean.aclose()

    uvloop.run(scenario())


def test_an_outer_cancellation_is_not_turned_into_a_timeout(redis_proc: RedisProcess) -> None:
    """A caller cancelled from outside (client gone, shutdown) sees CancelledError, not TimeoutError."""

    async def scenario() -> None:
        lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=5.0)
        assert await lean.execute("PING") == b"PONG"
        assert redis_proc.proc is not None
        os.kill(redis_proc.proc.pid, signal.SIGSTOP)
        try:
            task = asyncio.create_task(lean.execute("ECHO", "never"))
            await asyncio.sleep(0.05)  # let the command be sent; nothing to wait on but the send itself
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            os.kill(redis_proc.proc.pid, signal.SIGCONT)
        await lean.aclose()

    uvloop.run(scenario())


class _Hog(asyncio.Protocol):
    """An I/O callback that keeps the loop busy when its byte arrives (a burst of TLS handshakes): 200 ms, and
    longer if need be until `answered` is set (on a loaded machine Redis may take longer to reply)."""

    def __init__(self, answered: threading.Event) -> None:
        self._answered = answered

    def data_received(self, data: bytes) -> None:
        began = time.perf_counter()
        while time.perf_counter() - began < 0.2 or not self._answered.is_set():
            if time.perf_counter() - began > 10:
                raise AssertionError("Redis did not answer within 10 s of SIGCONT")


@pytest.mark.parametrize("path", ["pipeline", "redis-py client"])
def test_a_reply_that_arrived_while_an_io_callback_held_the_loop_is_not_a_timeout(
    redis_proc: RedisProcess, path: str
) -> None:
    """50 ms budget. Redis is frozen when the command is written; 20 ms later an I/O callback holds the loop for
    200 ms (or until Redis has answered, if later), and Redis, thawed 20 ms into that, answers. The budget ran
    out meanwhile, but the reply was in the socket before the loop could look: the command succeeds. (A
    zero-delay "look once more" ran before the next I/O poll on uvloop and raised TimeoutError here; a look that
    cancelled before the task the poll had woken could run did too, on a loaded machine.) Both the limiter's
    pipeline and the RedisDeadline that bounds the shared client's calls keep the rule."""
    assert redis_proc.proc is not None
    pid = redis_proc.proc.pid

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        here, there = socket.socketpair()
        answered = threading.Event()
        await loop.create_connection(lambda: _Hog(answered), sock=here)
        lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=0.05)
        client = aioredis.Redis.from_pool(blocking_pool(redis_proc.url, 1.0))
        assert await lean.execute("PING") == b"PONG"
        assert await client.ping()

        def elsewhere() -> None:
            time.sleep(0.02)
            there.send(b"x")  # the hog starts
            time.sleep(0.02)
            os.kill(pid, signal.SIGCONT)  # Redis answers while the loop is held
            # Redis replies in order of the commands it read: once a PING sent now is answered, so is ours.
            with socket.create_connection(("127.0.0.1", redis_proc.port), timeout=10) as probe:
                probe.sendall(b"PING\r\n")
                probe.recv(16)
            answered.set()

        os.kill(pid, signal.SIGSTOP)
        thread = threading.Thread(target=elsewhere)
        try:
            thread.start()
            if path == "pipeline":
                assert await lean.execute("ECHO", "in time") == b"in time"
            else:
                async with RedisDeadline(0.05):
                    assert await client.echo("in time") == b"in time"
        finally:
            thread.join()
            os.kill(pid, signal.SIGCONT)
            there.close()
            await lean.aclose()
            await client.aclose()

    uvloop.run(scenario())
