"""What redis-py's users count on, on the limiter's own Redis paths, against real redis-servers: a connection Redis
closed while idle is replaced, one late reply is one failure, a malformed reply is a Redis failure (never a 500),
and once Redis is back every path answers within a second."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import hiredis
import pytest
import redis
from structlog.testing import capture_logs

from service.config import LimitRule, LimitsConfig
from service.errors import IdempotencyInProgress, RateLimiterUnavailable
from service.issuing.idempotency import RedisIdempotencyStore
from service.metrics import Metrics
from service.ratelimit import (
    FailMode,
    FailoverRateLimiter,
    LimiterUnavailableError,
    build_limiter,
    checks_for,
    connect_redis,
)
from service.ratelimit.redis import RedisRateLimiter
from tests.support.redis_proc import RedisProcess
from tests.support.waiting import wait_until

LIMITS: dict[str, Any] = {"subject": [LimitRule(rate=100_000, burst=100_000)], "redis_timeout": 0.3}


def _errors(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (s.labels["operation"], s.labels["kind"]): s.value
        for family in metrics.registry.collect()
        if family.name == "livetoken_redis_errors"
        for s in family.samples
        if s.name.endswith("_total")
    }


def _clients(url: str) -> int:
    with redis.Redis.from_url(url) as admin:
        return len(admin.client_list()) - 1  # not this one


@pytest.fixture
def idle_closing_redis() -> Iterator[RedisProcess]:
    """A redis-server that closes a client connection idle for a second (`timeout 1`)."""
    proc = RedisProcess(extra_args=("--timeout", "1"))
    proc.start()
    yield proc
    proc.close()


@pytest.mark.parametrize("how", ["idle-timeout", "client-kill"])
async def test_connections_redis_closed_while_idle_are_replaced(idle_closing_redis: RedisProcess, how: str) -> None:
    """The limiter's pipelined connection and the shared client's pooled ones (idempotency) are closed by Redis
    (its idle `timeout`, or CLIENT KILL TYPE normal): the next acquire and the next Idempotency-Key claim succeed on
    new connections, and no Redis error is counted."""
    metrics = Metrics()
    limits = LimitsConfig(fail_mode="closed", **LIMITS)
    client = connect_redis(idle_closing_redis.url, 0.3)
    limiter = build_limiter(limits, client, metrics, FailMode("closed", metrics))
    store = RedisIdempotencyStore(client, 0.3, metrics)
    checks = checks_for(limits, "p", [], "dana", None)
    try:
        await limiter.warm()
        for round_ in range(3):
            assert _clients(idle_closing_redis.url) >= 2
            if how == "client-kill":
                with redis.Redis.from_url(idle_closing_redis.url) as admin:
                    admin.client_kill_filter(_type="normal", skipme=True)
            wait_until(lambda: _clients(idle_closing_redis.url) == 0, "Redis has closed every connection", 5)
            assert (await limiter.acquire(checks)).allowed, round_
            claim = await store.begin(f"k{round_}", "hash", 5.0)
            assert claim.kind == "claimed", round_
    finally:
        await limiter.aclose()
        await client.aclose()
    assert _errors(metrics) == {}


async def test_one_late_reply_is_one_failure_for_the_fail_over(redis_proc: RedisProcess) -> None:
    """Redis freezes with ten acquires waiting on the pipelined connection: all ten are refused (closed mode), but it
    is one Redis failure (one count, no `ratelimit_store_down`), so the next request after Redis thaws is decided by
    Redis at once instead of waiting out a back-off."""
    metrics = Metrics()
    limits = LimitsConfig(fail_mode="closed", **LIMITS)
    client = connect_redis(redis_proc.url, 0.3)
    limiter = build_limiter(limits, client, metrics, FailMode("closed", metrics))
    assert isinstance(limiter, FailoverRateLimiter)
    checks = checks_for(limits, "p", [], "erin", None)
    await limiter.warm()
    assert redis_proc.proc is not None
    with capture_logs() as logs:
        os.kill(redis_proc.proc.pid, signal.SIGSTOP)
        try:
            results = await asyncio.gather(*(limiter.acquire(checks) for _ in range(10)), return_exceptions=True)
        finally:
            os.kill(redis_proc.proc.pid, signal.SIGCONT)
        after = await limiter.acquire(checks)
    await limiter.aclose()
    await client.aclose()
    assert [type(r) for r in results] == [RateLimiterUnavailable] * 10
    assert _errors(metrics) == {("acquire", "timeout"): 1.0}
    assert [e for e in logs if e["event"] == "ratelimit_store_down"] == []
    assert after.allowed
    assert not after.in_memory


@contextlib.asynccontextmanager
async def _fake_redis(eval_reply: bytes) -> AsyncIterator[str]:
    """A RESP server that answers every command +OK (PING: +PONG) and EVALSHA with `eval_reply` as it stands."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        try:
            while data := await reader.read(65536):
                parser.feed(data)
                while (command := parser.gets()) is not False:
                    name = command[0].upper()
                    writer.write(eval_reply if name == b"EVALSHA" else b"+PONG\r\n" if name == b"PING" else b"+OK\r\n")
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"$-1\r\n", id="nil"),
        pytest.param(b"*4\r\n:1\r\n$-1\r\n:0\r\n:0\r\n", id="nil-inside"),
        pytest.param(b"*4\r\n:1\r\n-ERR nested\r\n:0\r\n:0\r\n", id="nested-error"),
        pytest.param(b"*2\r\n:1\r\n*1\r\n:1\r\n", id="nested-array"),
        pytest.param(b"*2\r\n:1\r\n:5\r\n", id="too-short"),
        pytest.param(b"+OK\r\n", id="status"),
    ],
)
async def test_a_malformed_reply_is_a_redis_failure_not_a_crash(reply: bytes) -> None:
    """Whatever shape a reply to the limit script has, a wrong one is a Redis failure: LimiterUnavailableError
    (503 or fail-open upstream of it), counted as kind `reply`; never a TypeError that would be a 500."""
    metrics = Metrics()
    limits = LimitsConfig(**LIMITS)
    async with _fake_redis(reply) as url:
        limiter = RedisRateLimiter.from_url(url, timeout=0.5, prefix="t", metrics=metrics)
        try:
            with pytest.raises(LimiterUnavailableError):
                await limiter.acquire(checks_for(limits, "p", [], "fay", None))
        finally:
            await limiter.aclose()
    assert _errors(metrics) == {("acquire", "reply"): 1.0}


async def test_once_redis_is_back_every_path_answers_within_a_second(redis_proc: RedisProcess) -> None:
    """Redis restarts (a crash: its connections die): once it answers again, an acquire and an Idempotency-Key
    claim both succeed within a second."""
    metrics = Metrics()
    limits = LimitsConfig(fail_mode="closed", **LIMITS)
    client = connect_redis(redis_proc.url, 0.3)
    limiter = build_limiter(limits, client, metrics, FailMode("closed", metrics))
    store = RedisIdempotencyStore(client, 0.3, metrics)
    checks = checks_for(limits, "p", [], "gus", None)
    try:
        await limiter.warm()
        await store.begin("before", "h", 5.0)
        redis_proc.stop()
        for _ in range(5):  # the outage is noticed: the fail-over marks Redis down
            with pytest.raises(RateLimiterUnavailable):
                await limiter.acquire(checks)
        redis_proc.start()  # returns once it answers PING
        back = time.monotonic()
        allowed = None
        while time.monotonic() - back < 1.0 and allowed is None:
            with contextlib.suppress(RateLimiterUnavailable):
                allowed = (await limiter.acquire(checks)).allowed
            if allowed is None:
                await asyncio.sleep(0.05)
        claim = await store.begin("after", "h", 5.0)
        elapsed = time.monotonic() - back
    finally:
        await limiter.aclose()
        await client.aclose()
    assert allowed is True
    assert claim.kind == "claimed"
    assert elapsed < 1.0


async def test_a_claim_sent_again_after_a_lost_reply_is_still_the_callers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared client sends a command once more when its connection fails (its reply may have been lost after
    Redis ran it): an Idempotency-Key claim that finds its own pending marker is the caller's claim, not `409 in
    progress`; another request's marker still is."""
    client = connect_redis(redis_url, 0.5)
    store = RedisIdempotencyStore(client, 0.5)
    monkeypatch.setattr("service.issuing.idempotency.secrets.token_hex", lambda _n: "same-claim-id")
    try:
        first = await store.begin("k-resent", "hash", 5.0)
        again = await store.begin("k-resent", "hash", 5.0)  # the same BEGIN, as redis-py's retry sends it
        monkeypatch.setattr("service.issuing.idempotency.secrets.token_hex", lambda _n: "another-request")
        with pytest.raises(IdempotencyInProgress):
            await store.begin("k-resent", "hash", 5.0)
    finally:
        await client.aclose()
    assert (first.kind, again.kind) == ("claimed", "claimed")
