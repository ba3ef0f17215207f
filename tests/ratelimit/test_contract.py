"""One contract, two backends: the memory limiter and the Redis limiter (a real redis-server) behave the same."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis

from service.config import LimitRule, LimitsConfig
from service.metrics import Metrics
from service.ratelimit import (
    LimitCheck,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    checks_for,
    connect_redis,
    ratelimit_headers,
)
from service.ratelimit.blocks import BlockRecord, MemoryBlockStore, RedisBlockStore
from tests.support.waiting import until


def rule(key: str, rate: int, period: float, burst: int, layer: str = "subject") -> LimitCheck:
    """One GCRA rule on `key` (keys carry a hash tag like the real ones)."""
    return LimitCheck(layer, f"{{{key}}}:r", rate, period, burst)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each backend in turn; the Redis one on the session's private redis-server."""
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url = request.getfixturevalue("redis_url")
    lim = RedisRateLimiter.from_url(url, timeout=1.0, prefix="t", metrics=Metrics())
    yield lim
    await lim.aclose()


async def test_burst_then_deny_with_accurate_retry_after(limiter: RateLimiter) -> None:
    """A burst of 3 passes at once, the 4th is refused with retry_after ≈ one emission interval."""
    checks = [rule("a", rate=3, period=3.0, burst=3)]
    decisions = [await limiter.acquire(checks) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.states[0].remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0.8 < decisions[3].retry_after <= 1.0


async def test_refills_over_time(limiter: RateLimiter) -> None:
    """After one emission interval one more request passes."""
    checks = [rule("b", rate=10, period=1.0, burst=1)]
    assert (await limiter.acquire(checks)).allowed
    assert not (await limiter.acquire(checks)).allowed
    started = time.monotonic()

    async def allowed_again() -> bool:
        return (await limiter.acquire(checks)).allowed

    await until(allowed_again, "one emission interval (0.1 s) has passed", within=2.0)
    assert 0.08 < time.monotonic() - started < 0.5


async def test_all_or_nothing_across_rules(limiter: RateLimiter) -> None:
    """When one rule denies, no rule is charged."""
    roomy = rule("c-roomy", rate=100, period=60, burst=100)
    tight = rule("c-tight", rate=1, period=60, burst=1, layer="global")
    assert (await limiter.acquire([roomy, tight])).allowed
    denied = await limiter.acquire([roomy, tight])
    assert not denied.allowed
    assert denied.states[0].remaining > 0
    # The denied request charged nothing: 99 left after the first, 98 after this one.
    alone = await limiter.acquire([roomy])
    assert alone.states[0].remaining == 98


async def test_refund_gives_one_request_back(limiter: RateLimiter) -> None:
    """A refunded request can be made again."""
    checks = [rule("d", rate=1, period=60, burst=2)]
    await limiter.acquire(checks)
    await limiter.acquire(checks)
    assert not (await limiter.acquire(checks)).allowed
    await limiter.refund(checks)
    assert (await limiter.acquire(checks)).allowed


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    """One subject's exhaustion does not touch another's."""
    assert (await limiter.acquire([rule("e1", 1, 60, 1)])).allowed
    assert not (await limiter.acquire([rule("e1", 1, 60, 1)])).allowed
    assert (await limiter.acquire([rule("e2", 1, 60, 1)])).allowed


async def test_reset_after_reports_time_to_full(limiter: RateLimiter) -> None:
    """reset_after is how long until the bucket is full again."""
    d = await limiter.acquire([rule("f", rate=2, period=10, burst=2)])
    assert 4.5 < d.states[0].reset_after <= 5.0


def test_checks_and_headers_from_config() -> None:
    """Layers come from config; keys are hash-tagged and hashed; headers follow the IETF draft."""
    limits = LimitsConfig(
        subject=[LimitRule(rate=10, burst=5)],
        tenant=[LimitRule(rate=100)],
        global_=[LimitRule(rate=1000)],
    )
    checks = checks_for(limits, "voice", [LimitRule(rate=3)], "iss\x1f{evil}sub", "acme")
    assert [c.layer for c in checks] == ["subject", "profile", "tenant", "global"]
    assert checks[0].key.startswith("{s:")
    assert "evil" not in checks[0].key
    assert checks[0].key.split("}")[0] == checks[1].key.split("}")[0]  # same slot for subject and profile
    assert checks_for(limits, "voice", [], "x", None)[-1].layer == "global"


async def test_headers_render_policy_and_tightest_limit() -> None:
    """RateLimit-Policy lists every rule; RateLimit names the tightest with remaining and reset."""
    lim = MemoryRateLimiter()
    d = await lim.acquire([rule("h1", 10, 60, 10), rule("h2", 2, 60, 2, layer="global")])
    headers = ratelimit_headers(d)
    assert headers["RateLimit-Policy"] == '"subject-60s";q=10;w=60, "global-60s";q=2;w=60'
    assert headers["RateLimit"] == '"global-60s";r=1;t=30'


async def test_redis_keys_have_ttls_and_hash_tags(redis_url: str) -> None:
    """Every key the Redis limiter writes carries a TTL and a hash tag."""
    lim = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="ttl", metrics=Metrics())
    limits = LimitsConfig(subject=[LimitRule(rate=5, burst=5)], global_=[LimitRule(rate=50)])
    await lim.acquire(checks_for(limits, "p", [LimitRule(rate=2)], "alice", "acme"))
    await lim.aclose()
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("ttl:*")
    assert len(keys) == 3
    for key in keys:
        assert 0 < client.pttl(key) <= 60_000
        assert b"{" in key
        assert b"}" in key
    client.close()


async def test_two_limiters_sharing_redis_admit_exactly_the_limit(redis_url: str) -> None:
    """200 concurrent checks through two separate pools on one Redis admit exactly 10."""
    a = RedisRateLimiter.from_url(redis_url, timeout=2.0, prefix="x", metrics=Metrics())
    b = RedisRateLimiter.from_url(redis_url, timeout=2.0, prefix="x", metrics=Metrics())
    checks = [rule("hammered", rate=10, period=3600, burst=10)]
    results = await asyncio.gather(*((a if i % 2 else b).acquire(checks) for i in range(200)))
    await a.aclose()
    await b.aclose()
    assert sum(d.allowed for d in results) == 10


def budget(key: str, units: int, period: float, cost: int, window_end: float | None = None) -> LimitCheck:
    """A budget spending `cost` units of `units` per `period` (a calendar window when `window_end` is set)."""
    return LimitCheck("budget-subject", f"{{{key}}}:b", units, period, units, cost, window_end)


async def test_a_budget_spends_each_requests_cost(limiter: RateLimiter) -> None:
    """30 units a day at 15 a token: two tokens, then a refusal whose retry is the time 15 units take to refill
    (12 h), with the units left reported at each step."""
    checks = [budget("cost", units=30, period=86400, cost=15)]
    decisions = [await limiter.acquire(checks) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.states[0].remaining for d in decisions] == [15, 0, 0]
    assert 43_100 < decisions[2].retry_after <= 43_200


async def test_a_calendar_budget_refuses_until_its_window_ends(limiter: RateLimiter) -> None:
    """A window of 20 units ending in 100 s: 20 at cost 10 pass, the next waits for the window's end."""
    ends = time.time() + 100
    checks = [budget("window", units=20, period=86400, cost=10, window_end=ends)]
    decisions = [await limiter.acquire(checks) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.states[0].remaining for d in decisions] == [10, 0, 0]
    assert 98 < decisions[2].retry_after <= 100


async def test_peek_reports_without_charging(limiter: RateLimiter) -> None:
    """Peeking twice changes nothing: the units left stay what one acquire left."""
    spend = [budget("peek", units=30, period=86400, cost=10), rule("peek-rate", rate=5, period=60, burst=5)]
    assert (await limiter.acquire(spend)).allowed
    first, second = await limiter.peek(spend), await limiter.peek(spend)
    assert [s.remaining for s in first.states] == [s.remaining for s in second.states] == [20, 4]


async def test_a_refund_gives_back_the_cost(limiter: RateLimiter) -> None:
    """A failed mint's refund returns its 15 units, for rolling and calendar budgets alike."""
    rolling = [budget("refund-r", units=30, period=86400, cost=15)]
    window = [budget("refund-w", units=30, period=86400, cost=15, window_end=time.time() + 100)]
    for checks in (rolling, window):
        assert (await limiter.acquire(checks)).allowed
        assert (await limiter.acquire(checks)).allowed
        await limiter.refund(checks)
        assert (await limiter.acquire(checks)).allowed
        assert not (await limiter.acquire(checks)).allowed


async def test_a_block_refuses_before_anything_is_charged(limiter: RateLimiter, request: pytest.FixtureRequest) -> None:
    """With a block in force the decision says which, with its time left, and no rule is charged."""
    checks = [rule("blocked", rate=1, period=3600, burst=1)]
    block = "{blocked}"
    record = BlockRecord(layer="subject", who="x", created_at=time.time(), expires_at=time.time() + 30)
    if isinstance(limiter, MemoryRateLimiter):
        await MemoryBlockStore(limiter).put(block, record)
    else:
        client = connect_redis(request.getfixturevalue("redis_url"), 1.0)
        await RedisBlockStore(client, "t", 1.0).put(block, record)
        await client.aclose()
    refused = await limiter.acquire(checks, [block, "{other}"])
    assert not refused.allowed
    assert refused.blocked is not None
    assert refused.blocked.block_id == block
    assert 29 < refused.blocked.remaining <= 30
    assert (await limiter.acquire(checks, ["{other}"])).allowed  # the burst of 1 was not spent by the refusal
