"""A replica remembers Redis's over-limit verdicts until their retry time: a flood costs no Redis call, limits
stay exact across replicas, a local refund forgets, a cheaper profile still fits a budget, memory is bounded."""

from __future__ import annotations

import redis

from service.metrics import Metrics
from service.ratelimit import Decision, LimitCheck, LimitState, RedisRateLimiter
from service.ratelimit.remembered import RememberedRefusals


def _evalsha_calls(url: str) -> int:
    with redis.Redis.from_url(url) as admin:
        return int(admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def _rule(key: str, burst: int = 1, cost: int = 1, layer: str = "subject") -> LimitCheck:
    return LimitCheck(layer, f"{{{key}}}:r", burst, 3600.0, burst, cost)


async def test_a_flooding_caller_is_refused_without_redis_until_its_retry_time(redis_url: str) -> None:
    """Burst 1 an hour: the second request is Redis's refusal; the next 200 are refused by memory with no EVALSHA,
    each with the retry time Redis gave, counting down."""
    metrics = Metrics()
    limiter = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="rem", metrics=metrics)
    checks = [_rule("flood")]
    assert (await limiter.acquire(checks)).allowed
    first = await limiter.acquire(checks)
    before = _evalsha_calls(redis_url)
    repeats = [await limiter.acquire(checks) for _ in range(200)]
    after = _evalsha_calls(redis_url)
    await limiter.aclose()
    assert not first.allowed
    assert after == before
    assert all(not d.allowed for d in repeats)
    assert first.retry_after >= repeats[0].retry_after >= repeats[-1].retry_after > 3590
    assert "livetoken_ratelimit_remembered_refusals_total 200.0" in metrics.render().decode()


async def test_two_replicas_still_admit_exactly_the_limit(redis_url: str) -> None:
    """Two limiters on one Redis, burst 3, 20 attempts each interleaved: exactly 3 admitted in all."""
    a = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="rem", metrics=Metrics())
    b = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="rem", metrics=Metrics())
    checks = [_rule("shared", burst=3)]
    admitted = 0
    for _ in range(20):
        for limiter in (a, b):
            admitted += (await limiter.acquire(checks)).allowed
    await a.aclose()
    await b.aclose()
    assert admitted == 3


async def test_a_refund_here_forgets_the_verdict(redis_url: str) -> None:
    """Over the limit, then a refund on this replica (a failed mint): the next request is admitted at once."""
    limiter = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="rem", metrics=Metrics())
    checks = [_rule("refunded")]
    assert (await limiter.acquire(checks)).allowed
    assert not (await limiter.acquire(checks)).allowed
    await limiter.refund(checks)
    admitted = await limiter.acquire(checks)
    await limiter.aclose()
    assert admitted.allowed


async def test_a_budget_refusal_at_one_cost_does_not_refuse_a_cheaper_one(redis_url: str) -> None:
    """20 units: 15 spent, a second 15 refused (remembered), yet a 5-unit token still fits."""
    limiter = RedisRateLimiter.from_url(redis_url, timeout=1.0, prefix="rem", metrics=Metrics())
    dear = [_rule("budget", burst=20, cost=15, layer="budget-subject")]
    cheap = [_rule("budget", burst=20, cost=5, layer="budget-subject")]
    assert (await limiter.acquire(dear)).allowed
    assert not (await limiter.acquire(dear)).allowed
    assert not (await limiter.acquire(dear)).allowed
    fits = await limiter.acquire(cheap)
    await limiter.aclose()
    assert fits.allowed


def test_the_memory_is_bounded() -> None:
    """At most max_entries verdicts: the oldest are forgotten first."""
    from service.ratelimit import Decision, LimitState

    memory = RememberedRefusals(max_entries=3)
    for i in range(10):
        check = _rule(f"c{i}")
        memory.remember(Decision(False, (LimitState(check, 0, 100.0, 100.0),)))
    assert len(memory) == 3
    assert memory.refusal([_rule("c0")]) is None
    assert memory.refusal([_rule("c9")]) is not None


def test_a_shared_rules_verdict_carries_only_that_rule() -> None:
    """A's refusal had its own budget (80 000 s) and the global rule (0.5 s) over: B, who shares only the global
    rule, is refused for the global rule's 0.5 s with that rule's state alone, never A's budget."""
    from service.ratelimit import Decision, LimitState

    memory = RememberedRefusals()
    a_budget = _rule("a-budget", layer="budget-subject")
    shared = _rule("global", layer="global")
    memory.remember(Decision(False, (LimitState(a_budget, 0, 80_000.0, 80_000.0), LimitState(shared, 0, 0.5, 0.5))))
    refusal = memory.refusal([_rule("b-subject"), shared])
    assert refusal is not None
    assert [s.check.layer for s in refusal.states] == ["global"]
    assert 0 < refusal.retry_after <= 0.5


def test_a_budget_refusal_is_remembered_a_second_at_most_and_tells_the_real_retry_time() -> None:
    """A spent budget refuses with a retry time hours away, but refunds on other replicas can make it whole long
    before: the verdict is repeated from memory for one second at most (each time with the real, counting-down
    retry time), then Redis is asked again. A rate limit's verdict is kept until its own retry time."""
    now = [1000.0]
    memory = RememberedRefusals(clock=lambda: now[0])
    budget = _rule("budget", layer="budget-subject")
    rate = _rule("rate")
    memory.remember(Decision(False, (LimitState(budget, 0, 17_279.0, 17_279.0), LimitState(rate, 0, 30.0, 30.0))))
    now[0] += 0.5
    repeated = memory.refusal([budget])
    assert repeated is not None
    assert [(s.check, round(s.retry_after, 6)) for s in repeated.states] == [(budget, 17_278.5)]
    now[0] += 0.6
    assert memory.refusal([budget]) is None  # 1.1 s on: ask Redis, whose refunds may have made it whole
    rate_repeated = memory.refusal([rate])
    assert rate_repeated is not None
    assert [(s.check, round(s.retry_after, 6)) for s in rate_repeated.states] == [(rate, 28.9)]
