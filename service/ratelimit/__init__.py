"""Rate limiting: GCRA over Redis (shared, exact) or memory (dev mode, fail-open fallback)."""

from __future__ import annotations

import structlog

from service.config import LimitsConfig
from service.metrics import Metrics
from service.ratelimit.base import Decision, LimitCheck, LimiterUnavailableError, LimitState, RateLimiter
from service.ratelimit.failover import FailoverRateLimiter
from service.ratelimit.memory import MemoryRateLimiter
from service.ratelimit.redis import RedisRateLimiter
from service.ratelimit.rules import checks_for, ratelimit_headers

__all__ = [
    "Decision",
    "FailoverRateLimiter",
    "LimitCheck",
    "LimitState",
    "LimiterUnavailableError",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "build_limiter",
    "checks_for",
    "ratelimit_headers",
]


def build_limiter(limits: LimitsConfig, redis_url: str | None, metrics: Metrics, cluster: bool = False) -> RateLimiter:
    """The limiter for this deployment: Redis behind the fail mode, or memory when no Redis is configured."""
    if redis_url is None:
        structlog.get_logger("livetoken.ratelimit").warning(
            "ratelimit_in_memory",
            detail="no LIVETOKEN_REDIS_URL: in-memory rate limiter, exact for this single process only",
        )
        return MemoryRateLimiter()
    primary = RedisRateLimiter.from_url(
        redis_url, timeout=float(limits.redis_timeout), prefix=limits.key_prefix, metrics=metrics, cluster=cluster
    )
    return FailoverRateLimiter(primary, limits.fail_mode, metrics)
