"""Redis dies and comes back: fail closed refuses fast, fail open limits in memory, both recover by themselves."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.config import Duration, LimitRule, LimitsConfig
from service.errors import RateLimiterUnavailable
from service.metrics import Metrics
from service.ratelimit import FailMode, FailoverRateLimiter, RedisClient, build_limiter, checks_for, connect_redis
from tests.support.redis_proc import RedisProcess

LIMITS = {"subject": [LimitRule(rate=1000, burst=1000)], "redis_timeout": 0.2}


def _failover(limits: LimitsConfig, url: str, metrics: Metrics) -> tuple[FailoverRateLimiter, RedisClient]:
    client = connect_redis(url, float(limits.redis_timeout))
    limiter = build_limiter(limits, client, metrics, FailMode(limits.fail_mode, metrics))
    assert isinstance(limiter, FailoverRateLimiter)
    return limiter, client


async def _recovers(limiter: FailoverRateLimiter, checks: list, within: float) -> float:  # type: ignore[type-arg]
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await limiter.state() == "ok":
            decision = await limiter.acquire(checks)
            assert decision.allowed
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError("did not recover")


async def test_fail_closed_refuses_fast_and_recovers(redis_proc: RedisProcess) -> None:
    """Closed: Redis gone → RateLimiterUnavailable within the timeout; back → Redis decides again in < 5 s."""
    metrics = Metrics()
    limiter, client = _failover(LimitsConfig(fail_mode="closed", **LIMITS), redis_proc.url, metrics)  # type: ignore[arg-type]
    checks = checks_for(LimitsConfig(**LIMITS), "p", [], "alice", None)  # type: ignore[arg-type]
    assert (await limiter.acquire(checks)).allowed
    redis_proc.stop()
    for _ in range(20):
        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailable):
            await limiter.acquire(checks)
        assert time.monotonic() - started < 0.5
    assert await limiter.state() == "unavailable"
    redis_proc.start()
    assert await _recovers(limiter, checks, within=5.0) < 5.0
    await limiter.aclose()
    await client.aclose()


async def test_fail_open_limits_in_memory_and_shows_it(redis_proc: RedisProcess) -> None:
    """Open: Redis gone → the in-memory limiter decides (still limiting) and the fallback gauge is 1."""
    metrics = Metrics()
    tight = {"subject": [LimitRule(rate=3, period=Duration(3600), burst=3)], "redis_timeout": 0.2}
    limiter, client = _failover(LimitsConfig(fail_mode="open", **tight), redis_proc.url, metrics)  # type: ignore[arg-type]
    checks = checks_for(LimitsConfig(**tight), "p", [], "bob", None)  # type: ignore[arg-type]
    redis_proc.stop()
    decisions = [await limiter.acquire(checks) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    text = metrics.render().decode()
    assert "livetoken_ratelimit_fallback_active 1.0" in text
    assert "livetoken_ratelimit_fallback_decisions_total 5.0" in text
    assert await limiter.state() == "fallback"
    redis_proc.start()
    await _recovers(limiter, checks, within=5.0)
    assert "livetoken_ratelimit_fallback_active 0.0" in metrics.render().decode()
    await limiter.aclose()
    await client.aclose()


async def test_a_refund_goes_back_where_the_request_was_charged(redis_proc: RedisProcess) -> None:
    """Open mode, one Redis failure (below the down threshold): the request is charged in this replica's memory,
    and its refund returns it there, so the memory's burst of 1 admits the retry (it went to Redis before)."""
    metrics = Metrics()
    limits = LimitsConfig(fail_mode="open", subject=[LimitRule(rate=1, period=Duration(3600), burst=1)])
    limiter, client = _failover(limits, redis_proc.url, metrics)
    checks = checks_for(limits, "p", [], "refunded", None)
    redis_proc.stop()
    first = await limiter.acquire(checks)
    await limiter.refund(checks, in_memory=first.in_memory)
    retry = await limiter.acquire(checks)
    await limiter.aclose()
    await client.aclose()
    assert (first.allowed, first.in_memory) == (True, True)
    assert retry.allowed
