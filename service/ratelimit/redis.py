"""GCRA in Redis: one Lua script, one round trip per check, timed by Redis itself.

On a single node every rule of a request goes into one EVALSHA. On Redis Cluster the keys of one script must
share a slot, so rules are grouped by hash tag (subject, tenant, global) and each group runs its own script;
if any group denies, the groups that were charged are refunded. Per-subject exactness is unaffected.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from importlib.resources import files

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from service.metrics import Metrics
from service.ratelimit.base import BlockHit, Decision, LimitCheck, LimiterUnavailableError, LimitState
from service.ratelimit.connections import BehindAFailure, LeanConnections
from service.ratelimit.deadline import RedisDeadline
from service.ratelimit.failures import REDIS_FAILURES, MalformedReply, RedisErrors, integers
from service.ratelimit.remembered import RememberedRefusals
from service.tracing import NO_TRACING, Tracing

_LUA = files("service.ratelimit") / "lua"
GCRA_SCRIPT = (_LUA / "gcra.lua").read_text()
REFUND_SCRIPT = (_LUA / "refund.lua").read_text()
_FAILURES = REDIS_FAILURES
LIMITER_CONNECTIONS = 1  # pipelined: one connection carries every request's EVALSHA, a send per loop iteration
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
        # A pooled connection Redis closed while it sat idle (the server's `timeout`, CLIENT KILL, a restart, a
        # load balancer) fails its next command with a ConnectionError before any reply: reconnect and send it
        # once more at once, instead of failing the request. Timeouts are not retried (the deadline is the
        # caller's).
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
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
        self,
        client: RedisClient,
        *,
        timeout: float,
        prefix: str,
        metrics: Metrics,
        owns_client: bool = False,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._client = client
        self._tracing = tracing
        self._remembered = RememberedRefusals()
        self._owns_client = owns_client
        self._cluster = isinstance(client, RedisCluster)
        self._timeout = timeout
        self._prefix = prefix + ":gcra:"
        self._block_prefix = prefix + ":block:"
        self._metrics = metrics
        self._errors = RedisErrors(metrics)
        self._latency = metrics.ratelimit_latency.labels(backend="redis")
        self._ready = not self._cluster
        self._init_lock = asyncio.Lock()
        self._gcra = client.register_script(GCRA_SCRIPT)
        self._refund = client.register_script(REFUND_SCRIPT)
        # A single node runs every check of a request as one EVALSHA, pipelined with the other requests' on one
        # connection (see connections.py).
        self._lean = (
            None
            if isinstance(client, RedisCluster)
            else LeanConnections(client.connection_pool, LIMITER_CONNECTIONS, timeout, tracing=tracing)
        )

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float, prefix: str, metrics: Metrics, cluster: bool = False
    ) -> RedisRateLimiter:
        """A limiter with a client of its own (tests, tools); the service shares one client (`connect_redis`)."""
        client = connect_redis(url, timeout, cluster=cluster)
        return cls(client, timeout=timeout, prefix=prefix, metrics=metrics, owns_client=True)

    def _groups(self, checks: Sequence[LimitCheck], blocks: Sequence[str]) -> list[tuple[list[int], list[str]]]:
        """The checks and blocks each script runs: all of them on one node; one group per hash tag on a cluster
        (a script's keys must share a slot)."""
        if not self._cluster:
            return [(list(range(len(checks))), list(blocks))]
        groups: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
        for i, c in enumerate(checks):
            groups[_tag(c.key)][0].append(i)
        for block in blocks:
            groups[_tag(block)][1].append(block)
        return list(groups.values())

    async def _ensure_ready(self) -> None:
        # redis-py's cluster client races when a burst of first commands all try to discover the slots map.
        async with self._init_lock:
            if not self._ready:
                await self._client.initialize()  # only RedisCluster gets here
                self._ready = True

    def _script_args(
        self, checks: Sequence[LimitCheck], idx: list[int], blocks: list[str], charge: bool
    ) -> tuple[list[str], list[int]]:
        keys = [self._block_prefix + b for b in blocks] + [self._prefix + checks[i].key for i in idx]
        args: list[int] = [len(blocks), 1 if charge else 0]
        for i in idx:
            c = checks[i]
            cost = c.cost if charge else 0  # a peek asks where each rule stands, not whether one more fits
            if c.window_end is None:
                args += [0, c.interval_us, c.burst, cost]
            else:
                args += [1, c.burst, round(c.window_end * 1_000_000), cost]
        return keys, args

    async def _run_script(
        self, checks: Sequence[LimitCheck], group: tuple[list[int], list[str]], charge: bool
    ) -> list[int]:
        keys, args = self._script_args(checks, group[0], group[1], charge)
        return integers(await self._gcra(keys=keys, args=args))

    async def _run_lean(
        self, lean: LeanConnections, checks: Sequence[LimitCheck], blocks: Sequence[str], charge: bool
    ) -> list[int]:
        keys, args = self._script_args(checks, list(range(len(checks))), list(blocks), charge)
        try:
            reply = await lean.execute("EVALSHA", self._gcra.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed Redis: load the script once and go on
            await lean.execute("SCRIPT", "LOAD", GCRA_SCRIPT)
            reply = await lean.execute("EVALSHA", self._gcra.sha, len(keys), *keys, *args)
        return integers(reply)

    async def acquire(self, checks: Sequence[LimitCheck], blocks: Sequence[str] = ()) -> Decision:
        """See RateLimiter.acquire; a verdict Redis gave that a rule is over its limit is remembered until its retry
        time and repeated without Redis (remembered.py)."""
        local = self._remembered.refusal(checks)
        if local is not None:
            self._metrics.ratelimit_remembered.inc()
            return local
        decision = await self._decide(checks, blocks, charge=True)
        self._remembered.remember(decision)
        return decision

    async def peek(self, checks: Sequence[LimitCheck]) -> Decision:
        """See RateLimiter.peek."""
        return await self._decide(checks, (), charge=False)

    async def _decide(self, checks: Sequence[LimitCheck], blocks: Sequence[str], *, charge: bool) -> Decision:
        started = time.perf_counter()
        groups = self._groups(checks, blocks)
        operation = "acquire" if charge else "peek"
        try:
            if self._lean is not None:  # one node: one command, bounded by the lean path's own deadline
                replies = [await self._run_lean(self._lean, checks, blocks, charge)]
            else:
                replies = await self._run_groups(checks, groups, charge)
            for (idx, _), reply in zip(groups, replies, strict=True):
                if len(reply) != (3 if reply and reply[0] == 2 else 1 + 3 * len(idx)):
                    raise MalformedReply(f"The limit script answered {len(reply)} numbers for {len(idx)} checks.")
        except BehindAFailure:
            # Failed only because the command ahead of it on the pipelined connection did: counted once, there.
            raise LimiterUnavailableError("BehindAFailure", counted=False) from None
        except _FAILURES as exc:
            self._errors.count(operation, exc)
            raise LimiterUnavailableError(type(exc).__name__) from None
        finally:
            self._latency.observe(time.perf_counter() - started, self._tracing.exemplar())
        blocked = next(
            (
                BlockHit(group[1][reply[1] - 1], reply[2] / 1000 if reply[2] >= 0 else math.inf)
                for group, reply in zip(groups, replies, strict=True)
                if reply[0] == 2
            ),
            None,
        )
        states: list[LimitState | None] = [None] * len(checks)
        allowed = blocked is None and all(reply[0] == 1 for reply in replies)
        for (idx, _), reply in zip(groups, replies, strict=True):
            if reply[0] == 2:
                continue
            for j, i in enumerate(idx):
                remaining, reset_us, retry_us = reply[1 + 3 * j : 4 + 3 * j]
                states[i] = LimitState(checks[i], remaining, reset_us / 1e6, retry_us / 1e6)
        if charge and not allowed and len(groups) > 1:
            charged = [checks[i] for (idx, _), reply in zip(groups, replies, strict=True) if reply[0] == 1 for i in idx]
            await self.refund(charged)
        return Decision(allowed, tuple(s for s in states if s is not None), blocked)

    async def _run_groups(
        self, checks: Sequence[LimitCheck], groups: list[tuple[list[int], list[str]]], charge: bool
    ) -> list[list[int]]:
        """Cluster: one script per hash-tag group, all inside one deadline."""
        async with RedisDeadline(self._timeout):
            if not self._ready:
                await self._ensure_ready()
            if len(groups) == 1:
                return [await self._run_script(checks, groups[0], charge)]
            return list(await asyncio.gather(*(self._run_script(checks, g, charge) for g in groups)))

    async def refund(self, checks: Sequence[LimitCheck], *, in_memory: bool = False) -> None:
        """See RateLimiter.refund; best effort (a lost refund only makes the limit stricter)."""
        if not checks:
            return
        self._remembered.forget(checks)
        try:
            async with RedisDeadline(self._timeout):
                for idx, _ in self._groups(checks, ()):
                    args: list[int] = []
                    for i in idx:
                        c = checks[i]
                        args += [0 if c.window_end is None else 1, c.interval_us, c.cost]
                    await self._refund(keys=[self._prefix + checks[i].key for i in idx], args=args)
        except _FAILURES as exc:
            self._errors.count("refund", exc)

    async def ping(self) -> bool:
        """Whether Redis answers within the timeout."""
        try:
            async with RedisDeadline(self._timeout):
                return bool(await self._client.ping())
        except _FAILURES as exc:
            self._errors.count("ping", exc)
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
