"""The limiter's pipelined Redis path against a real redis-server: one send per loop iteration, in step after a
timeout or a cancelled caller, self-healing, and opened with the URL's password and database as redis-py opens
it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.exceptions import ConnectionError as RedisConnectionError

from service.config import LimitRule, LimitsConfig
from service.metrics import Metrics
from service.ratelimit import checks_for
from service.ratelimit.connections import BehindAFailure, LeanConnections
from service.ratelimit.redis import RedisRateLimiter, blocking_pool
from tests.support.redis_proc import RedisProcess
from tests.support.waiting import until


def _written(pipe: Any) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return pipe.in_flight == 1 and not pipe._out

    return check


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


async def test_commands_of_one_loop_iteration_go_out_in_one_send(redis_url: str) -> None:
    """50 callers whose commands are queued in the same loop iteration (as 50 requests read in one I/O poll): one
    write to the socket carries all 50, Redis gets each (INFO's command count), and each caller its own reply."""
    lean = LeanConnections(blocking_pool(redis_url, 1.0), size=1, timeout=2.0)
    assert await lean.execute("PING") == b"PONG"
    (pipe,) = lean._pipes
    writes: list[bytes] = []
    real_write = pipe._transport.write

    def recording(data: Any) -> None:
        writes.append(bytes(data))
        real_write(data)

    pipe._transport.write = recording  # type: ignore[method-assign]
    with redis.Redis.from_url(redis_url) as admin:
        echoes_before = admin.info("commandstats").get("cmdstat_echo", {}).get("calls", 0)
        replies = await asyncio.gather(*(lean.execute("ECHO", f"caller-{i}") for i in range(50)))
        echoes_after = admin.info("commandstats")["cmdstat_echo"]["calls"]
    assert replies == [f"caller-{i}".encode() for i in range(50)]
    packer = aioredis.Connection()  # redis-py's own packer: the RESP bytes of each command
    assert writes == [b"".join(b"".join(packer.pack_command("ECHO", f"caller-{i}")) for i in range(50))]
    assert echoes_after - echoes_before == 50
    await lean.aclose()


async def test_the_pipeline_speaks_resp2(redis_url: str) -> None:
    """redis-py would open the connection with RESP3 (its default), where a server may push frames between
    replies; the pipeline asks for RESP2, where every frame is a reply to a command, in order."""
    lean = LeanConnections(blocking_pool(redis_url, 1.0), size=1, timeout=2.0)
    info = await lean.execute("CLIENT", "INFO")
    await lean.aclose()
    assert b" resp=2\n" in info or b" resp=2 " in info


async def test_a_cancelled_caller_leaves_the_connection_in_step(redis_proc: RedisProcess) -> None:
    """A caller cancelled while Redis is frozen (its client went away): when Redis thaws, the reply meant for it is
    dropped and the next caller on the same connection gets its own reply, not that one."""
    lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=5.0)
    assert await lean.execute("ECHO", "warm") == b"warm"
    assert redis_proc.proc is not None
    os.kill(redis_proc.proc.pid, signal.SIGSTOP)
    try:
        gone = asyncio.create_task(lean.execute("ECHO", "for-the-cancelled-caller"))
        (pipe,) = lean._pipes
        await until(_written(pipe), "the command was written")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        following = asyncio.create_task(lean.execute("ECHO", "next"))
    finally:
        os.kill(redis_proc.proc.pid, signal.SIGCONT)
    assert await following == b"next"
    assert len(lean._pipes) == 1  # the same connection carried both
    await lean.aclose()


async def test_the_urls_password_and_database_are_used(tmp_path: Any) -> None:
    """redis-py opens the connection (AUTH with the URL's password, SELECT of its database) before the pipeline
    takes it over: the limiter's keys land in database 3 of a password-protected Redis."""
    server = RedisProcess(extra_args=("--requirepass", "s3cret-pass"))
    try:
        server.start()
        url = server.url.replace("redis://", "redis://:s3cret-pass@").rsplit("/", 1)[0] + "/3"
        lean = LeanConnections(blocking_pool(url, 1.0), size=1, timeout=2.0)
        assert await lean.execute("SET", "livetoken:probe", "here") == b"OK"
        await lean.aclose()
        with redis.Redis.from_url(url) as admin:
            assert admin.get("livetoken:probe") == b"here"
            assert {db: stats["keys"] for db, stats in admin.info("keyspace").items()} == {"db3": 1}
        wrong = LeanConnections(blocking_pool(url.replace("s3cret-pass", "wrong"), 1.0), size=1, timeout=2.0)
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.execute("PING")
        await wrong.aclose()
    finally:
        server.close()


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


async def _outcome(lean: LeanConnections, *args: Any) -> tuple[type[BaseException] | None, float]:
    """How one command ended (its exception's type, None for a reply) and when (time.monotonic())."""
    try:
        await lean.execute(*args)
    except Exception as exc:  # the failure is the outcome under test
        return type(exc), time.monotonic()
    return None, time.monotonic()


async def test_a_late_reply_fails_every_command_behind_it_at_once(redis_proc: RedisProcess) -> None:
    """Redis freezes with one command written, and two more are written 0.25 s later on the same connection (0.5 s
    budget each). When the first is late, all three fail at that moment: the first with TimeoutError, the two
    behind it with BehindAFailure; none waits for a deadline of its own, none is left hanging."""
    lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=0.5)
    assert await lean.execute("PING") == b"PONG"
    (pipe,) = lean._pipes
    assert redis_proc.proc is not None
    os.kill(redis_proc.proc.pid, signal.SIGSTOP)
    try:
        first = asyncio.create_task(_outcome(lean, "ECHO", "first"))
        await until(_written(pipe), "the first command was written")
        written = time.monotonic()
        await asyncio.sleep(0.25)  # the two behind it are written later, so their own deadlines come later
        behind = [asyncio.create_task(_outcome(lean, "ECHO", f"behind-{i}")) for i in range(2)]
        async with asyncio.timeout(3):
            outcomes = await asyncio.gather(first, *behind)
    finally:
        os.kill(redis_proc.proc.pid, signal.SIGCONT)
    await lean.aclose()
    assert [kind for kind, _ in outcomes] == [TimeoutError, BehindAFailure, BehindAFailure]
    ended = [at for _, at in outcomes]
    assert 0.45 <= ended[0] - written < 1.0
    assert max(ended) - min(ended) < 0.1


async def test_a_lost_connection_fails_every_command_waiting_on_it_at_once(redis_proc: RedisProcess) -> None:
    """Three commands wait on one connection (5 s budget each) when Redis dies (SIGKILL): all three fail at once
    with a connection error (the oldest as the loss, the others as behind it), well within their budget."""
    lean = LeanConnections(blocking_pool(redis_proc.url, 1.0), size=1, timeout=5.0)
    assert await lean.execute("PING") == b"PONG"
    (pipe,) = lean._pipes
    assert redis_proc.proc is not None
    os.kill(redis_proc.proc.pid, signal.SIGSTOP)  # the commands wait, unanswered, until Redis dies
    waiting = [asyncio.create_task(_outcome(lean, "ECHO", f"c{i}")) for i in range(3)]

    async def all_written() -> bool:
        return pipe.in_flight == 3 and not pipe._out

    await until(all_written, "the three commands were written")
    killed = time.monotonic()
    redis_proc.stop()
    async with asyncio.timeout(3):
        outcomes = await asyncio.gather(*waiting)
    await lean.aclose()
    assert [kind for kind, _ in outcomes] == [RedisConnectionError, BehindAFailure, BehindAFailure]
    ended = [at for _, at in outcomes]
    assert max(ended) - killed < 1.0
    assert max(ended) - min(ended) < 0.1
