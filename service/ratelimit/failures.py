"""What counts as a Redis failure, and how it is counted: one metric, `livetoken_redis_errors_total{operation,kind}`,
for every path that talks to Redis (the limiter, budgets, refunds, blocks, idempotency, readiness)."""

from __future__ import annotations

from redis.exceptions import DataError, InvalidResponse, RedisError, ResponseError

from service.metrics import Metrics

# A Redis call failed: it timed out, the connection failed, or the reply was an error or not what was asked for.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class MalformedReply(InvalidResponse):
    """A reply of the wrong shape (a nil, a nested error, a short array) where the script answers integers."""


def failure_kind(exc: BaseException) -> str:
    """`timeout`, `reply` (an error reply, or one of the wrong shape) or `connection`."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ResponseError | InvalidResponse | DataError):
        return "reply"
    return "connection"


class RedisErrors:
    """Counts a failed Redis operation under its name and kind."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metric = metrics.redis_errors if metrics is not None else None

    def count(self, operation: str, exc: BaseException) -> None:
        """One failure of `operation`."""
        if self._metric is not None:
            self._metric.labels(operation=operation, kind=failure_kind(exc)).inc()


def integers(reply: object) -> list[int]:
    """A script's reply as the list of integers it must be; MalformedReply (a Redis failure) otherwise."""
    if not isinstance(reply, list) or not all(isinstance(x, int) for x in reply):
        raise MalformedReply(f"Redis answered {type(reply).__name__} where the script returns integers.")
    return reply
