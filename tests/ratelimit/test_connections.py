"""The limiter's lean Redis path against a real redis-server: bounded, in step after a timeout, self-healing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hiredis import pack_command

from service.config import LimitRule, LimitsConfig
from service.metrics import Metrics
from service.ratelimit import checks_for
from service.ratelimit.connections import LeanConnections
from service.ratelimit.redis import RedisRateLimiter, blocking_pool
from tests.support.redis_proc import RedisProcess


def _clients(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return len(client.client_list())


async def test_a_burst_larger_than_the_pool_completes_on_at_most_size_connections(redis_url: str) -> None:
    """300 concurrent commands on 8 connections: every one answered with its own reply, 8 sockets at most."""
    before = _clients(redis_url)
    lean = LeanConnections(blocking_pool(redis_url, 1.0), size=8, timeout=2.0)
    replies = await asyncio.gather(*(lean.execute("ECHO", f"m{i}") for i in range(300)))
    assert replies == [f"m{i}".encode() for i in range(300)]
    assert _clients(redis_url) - before <= 8
    await lean.aclose()
    assert _clients(redis_url) == before


def test_the_lean_path_sends_the_bytes_redis_py_would() -> None:
    """The lean path packs with hiredis: for the limiter's EVALSHA (text, numbers, non-ASCII, negative numbers) the
    bytes on the wire are redis-py's own packer's, byte for byte."""
    args: tuple[Any, ...] = (
        "EVALSHA",
        "0" * 40,
        3,
        "livetoken:block:{s:ab}",
        "livetoken:gcra:{s:ab}:é",
        "k",
        1,
        1,
        0,
        36_000_000,
        -5,
    )
    assert pack_command(args) == b"".join(aioredis.Connection().pack_command(*args))


async def test_a_timed_out_command_does_not_leave_its_reply_for_the_next(redis_proc: RedisProcess) -> None:
    """Redis frozen mid-command → TimeoutError within the deadline; thawed → the next command gets its own reply,
    not the late one of the command that timed out."""
    lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=0.3)
    assert await lean.execute("ECHO", "warm") == b"warm"
    assert redis_proc.proc is not None
    os.kill(redis_proc.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await lean.execute("ECHO", "late")
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(redis_proc.proc.pid, signal.SIGCONT)
    assert await lean.execute("ECHO", "next") == b"next"
    await lean.aclose()


async def test_limiter_reloads_its_script_after_a_flush(redis_url: str) -> None:
    """SCRIPT FLUSH (or a restarted Redis) costs one reload, not an error."""
    limits = LimitsConfig(subject=[LimitRule(rate=10, period=60, burst=2)])  # type: ignore[arg-type]
    limiter = RedisRateLimiter(
        aioredis.Redis.from_pool(blocking_pool(redis_url, 1.0)), timeout=1.0, prefix="t", metrics=Metrics()
    )
    checks = checks_for(limits, "p", [], "carol", None)
    assert (await limiter.acquire(checks)).allowed
    with redis.Redis.from_url(redis_url) as admin:
        admin.script_flush()
    assert (await limiter.acquire(checks)).allowed
    assert not (await limiter.acquire(checks)).allowed  # and it still counts: burst 2 is spent
    await limiter.aclose()
