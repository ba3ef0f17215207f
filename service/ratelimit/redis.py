"""GCRA in Redis: one Lua script, one round trip per check, timed by Redis itself.

On a single node every rule of a request goes into one EVALSHA. On Redis Cluster the keys of one script must
share a slot, so rules are grouped by hash tag (subject, tenant, global) and each group runs its own script;
if any group denies, the groups that were charged are refunded. Per-subject exactness is unaffected.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from importlib.resources import files

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from service.metrics import Metrics
from service.ratelimit.base import Decision, LimitCheck, LimiterUnavailableError, LimitState
from service.ratelimit.connections import LeanConnections
from service.ratelimit.deadline import RedisDeadline

_LUA = files("service.ratelimit") / "lua"
GCRA_SCRIPT = (_LUA / "gcra.lua").read_text()
REFUND_SCRIPT = (_LUA / "refund.lua").read_text()
_FAILURES = (RedisError, OSError, TimeoutError)
WARM_SHARED_CONNECTIONS = 4  # the idempotency store's and readiness' share of the one client's pool


def blocking_pool(url: str, timeout: float, size: int = 64) -> aioredis.BlockingConnectionPool:
    """A bounded pool where a burst waits (up to `timeout`) for a free connection instead of failing.

    With hundreds of requests in flight, redis-py's default pool raised MaxConnectionsError and every
    one of those requests became a 503; 64 connections keep one event loop's Redis traffic flowing.
    """
    return aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
    )


RedisClient = aioredis.Redis | RedisCluster


def connect_redis(url: str, timeout: float, *, cluster: bool = False) -> RedisClient:
    """The process's one Redis client (connecting lazily), shared by the limiter, idempotency and readiness;
    every socket operation bounded by `timeout`."""
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return aioredis.Redis.from_pool(blocking_pool(url, timeout))


def _tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


class RedisRateLimiter:
    """Shared limiter: exact across any number of replicas using the same Redis."""

    backend = "redis"

    def __init__(
        self, client: RedisClient, *, timeout: float, prefix: str, metrics: Metrics, owns_client: bool = False
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._cluster = isinstance(client, RedisCluster)
        self._timeout = timeout
        self._prefix = prefix + ":gcra:"
        self._metrics = metrics
        self._latency = metrics.ratelimit_latency.labels(backend="redis")
        self._ready = not self._cluster
        self._init_lock = asyncio.Lock()
        self._gcra = client.register_script(GCRA_SCRIPT)
        self._refund = client.register_script(REFUND_SCRIPT)
        # A single node runs every check of a request as one EVALSHA on the lean path (see connections.py).
        self._lean = None if isinstance(client, RedisCluster) else LeanConnections(client.connection_pool, 64, timeout)

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float, prefix: str, metrics: Metrics, cluster: bool = False
    ) -> RedisRateLimiter:
        """A limiter with a client of its own (tests, tools); the service shares one client (`connect_redis`)."""
        client = connect_redis(url, timeout, cluster=cluster)
        return cls(client, timeout=timeout, prefix=prefix, metrics=metrics, owns_client=True)

    def _groups(self, checks: Sequence[LimitCheck]) -> list[list[int]]:
        if not self._cluster:
            return [list(range(len(checks)))]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(checks):
            groups[_tag(c.key)].append(i)
        return list(groups.values())

    async def _ensure_ready(self) -> None:
        # redis-py's cluster client races when a burst of first commands all try to discover the slots map.
        async with self._init_lock:
            if not self._ready:
                await self._client.initialize()  # only RedisCluster gets here
                self._ready = True

    def _gcra_args(self, checks: Sequence[LimitCheck], idx: list[int]) -> tuple[list[str], list[int]]:
        keys = [self._prefix + checks[i].key for i in idx]
        args: list[int] = []
        for i in idx:
            c = checks[i]
            args += [max(1, round(c.period / c.rate * 1_000_000)), c.burst]
        return keys, args

    async def _run_gcra(self, checks: Sequence[LimitCheck], idx: list[int]) -> list[int]:
        keys, args = self._gcra_args(checks, idx)
        return [int(x) for x in await self._gcra(keys=keys, args=args)]

    async def _run_gcra_lean(self, lean: LeanConnections, checks: Sequence[LimitCheck]) -> list[int]:
        keys, args = self._gcra_args(checks, list(range(len(checks))))
        try:
            reply = await lean.execute("EVALSHA", self._gcra.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed Redis: load the script once and go on
            await lean.execute("SCRIPT", "LOAD", GCRA_SCRIPT)
            reply = await lean.execute("EVALSHA", self._gcra.sha, len(keys), *keys, *args)
        return [int(x) for x in reply]

    async def acquire(self, checks: Sequence[LimitCheck]) -> Decision:
        """See RateLimiter.acquire."""
        started = time.perf_counter()
        groups = self._groups(checks)
        try:
            if self._lean is not None:  # one node: one command, bounded by the lean path's own deadline
                replies = [await self._run_gcra_lean(self._lean, checks)]
            else:
                replies = await self._run_groups(checks, groups)
        except _FAILURES as exc:
            self._metrics.redis_errors.labels(op="acquire").inc()
            raise LimiterUnavailableError(type(exc).__name__) from None
        finally:
            self._latency.observe(time.perf_counter() - started)
        states: list[LimitState | None] = [None] * len(checks)
        allowed = all(reply[0] == 1 for reply in replies)
        for idx, reply in zip(groups, replies, strict=True):
            for j, i in enumerate(idx):
                remaining, reset_us, retry_us = reply[1 + 3 * j : 4 + 3 * j]
                states[i] = LimitState(checks[i], remaining, reset_us / 1e6, retry_us / 1e6)
        if not allowed and len(groups) > 1:
            charged = [checks[i] for idx, reply in zip(groups, replies, strict=True) if reply[0] == 1 for i in idx]
            await self.refund(charged)
        return Decision(allowed, tuple(s for s in states if s is not None))

    async def _run_groups(self, checks: Sequence[LimitCheck], groups: list[list[int]]) -> list[list[int]]:
        """Cluster: one script per hash-tag group, all inside one deadline."""
        async with RedisDeadline(self._timeout):
            if not self._ready:
                await self._ensure_ready()
            if len(groups) == 1:
                return [await self._run_gcra(checks, groups[0])]
            return list(await asyncio.gather(*(self._run_gcra(checks, g) for g in groups)))

    async def refund(self, checks: Sequence[LimitCheck]) -> None:
        """See RateLimiter.refund; best effort (a lost refund only makes the limit stricter)."""
        if not checks:
            return
        try:
            async with RedisDeadline(self._timeout):
                for idx in self._groups(checks):
                    await self._refund(
                        keys=[self._prefix + checks[i].key for i in idx],
                        args=[max(1, round(checks[i].period / checks[i].rate * 1_000_000)) for i in idx],
                    )
        except _FAILURES:
            self._metrics.redis_errors.labels(op="refund").inc()

    async def ping(self) -> bool:
        """Whether Redis answers within the timeout."""
        try:
            async with RedisDeadline(self._timeout):
                return bool(await self._client.ping())
        except _FAILURES:
            self._metrics.redis_errors.labels(op="ping").inc()
            return False

    async def warm(self) -> None:
        """Load the script and open the limiter's connections (and a few of the shared client's) now, so the
        first burst after /readyz turns ready pays no connection set-up; raises LimiterUnavailableError."""
        try:
            async with asyncio.timeout(4 * self._timeout):
                if self._lean is None:
                    await self._ensure_ready()
                    return
                await self._lean.execute("SCRIPT", "LOAD", GCRA_SCRIPT)
                await asyncio.gather(*(self._lean.execute("PING") for _ in range(self._lean.size)))
                await asyncio.gather(*(self._client.ping() for _ in range(WARM_SHARED_CONNECTIONS)))
        except _FAILURES as exc:
            raise LimiterUnavailableError(type(exc).__name__) from None

    async def aclose(self) -> None:
        """Close the limiter's own connections (and the client, where it is the limiter's own)."""
        if self._lean is not None:
            await self._lean.aclose()
        if self._owns_client:
            await self._client.aclose()
