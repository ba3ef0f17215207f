"""Rate limiting: GCRA over Redis (shared, exact) or memory (dev mode, fail-open fallback)."""

from __future__ import annotations

import structlog

from service.config import LimitsConfig
from service.metrics import Metrics
from service.ratelimit.base import Decision, LimitCheck, LimiterUnavailableError, LimitState, RateLimiter
from service.ratelimit.failover import FailMode, FailoverRateLimiter
from service.ratelimit.memory import MemoryRateLimiter
from service.ratelimit.redis import RedisClient, RedisRateLimiter, connect_redis
from service.ratelimit.rules import checks_for, ratelimit_headers

__all__ = [
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
    "build_limiter",
    "checks_for",
    "connect_redis",
    "ratelimit_headers",
]


def build_limiter(
    limits: LimitsConfig, client: RedisClient | None, metrics: Metrics, fail_mode: FailMode
) -> RateLimiter:
    """The limiter for this deployment: Redis behind the fail mode, or memory when no Redis is configured."""
    if client is None:
        structlog.get_logger("livetoken.ratelimit").warning(
            "ratelimit_in_memory",
            detail="no LIVETOKEN_REDIS_URL: in-memory rate limiter, exact for this single process only",
        )
        return MemoryRateLimiter()
    primary = RedisRateLimiter(client, timeout=float(limits.redis_timeout), prefix=limits.key_prefix, metrics=metrics)
    return FailoverRateLimiter(primary, fail_mode, metrics)
