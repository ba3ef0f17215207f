"""Rate limiting: GCRA over Redis (shared, exact) or memory (dev mode, fail-open fallback)."""

from __future__ import annotations

import structlog

from service.config import LimitsConfig
from service.metrics import Metrics
from service.ratelimit.base import BlockHit, Decision, LimitCheck, LimiterUnavailableError, LimitState, RateLimiter
from service.ratelimit.failover import FailMode, FailoverRateLimiter
from service.ratelimit.memory import MemoryRateLimiter
from service.ratelimit.redis import RedisClient, RedisRateLimiter, connect_redis
from service.ratelimit.rules import (
    block_ids,
    budget_checks,
    checks_for,
    ratelimit_headers,
    subject_block,
    tenant_block,
)
from service.tracing import NO_TRACING, Tracing

__all__ = [
    "BlockHit",
    "Decision",
    "FailMode",
    "FailoverRateLimiter",
    "LimitCheck",
    "LimitState",
    "LimiterUnavailableError",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisClient",
    "RedisRateLimiter",
    "block_ids",
    "budget_checks",
    "build_limiter",
    "checks_for",
    "connect_redis",
    "ratelimit_headers",
    "subject_block",
    "tenant_block",
]


def build_limiter(
    limits: LimitsConfig,
    client: RedisClient | None,
    metrics: Metrics,
    fail_mode: FailMode,
    *,
    tracing: Tracing = NO_TRACING,
) -> RateLimiter:
    """The limiter for this deployment: Redis behind the fail mode, or memory when no Redis is configured."""
    if client is None:
        structlog.get_logger("livetoken.ratelimit").warning(
            "ratelimit_in_memory",
            detail="no LIVETOKEN_REDIS_URL: in-memory rate limiter, exact for this single process only",
        )
        return MemoryRateLimiter()
    primary = RedisRateLimiter(
        client, timeout=float(limits.redis_timeout), prefix=limits.key_prefix, metrics=metrics, tracing=tracing
    )
    return FailoverRateLimiter(primary, fail_mode, metrics)
